package config

// Hints for keys that operators bring from keepalived and HAProxy: an
// unknown key that one of them names gets its fix instead of a bare
// "did you mean".
var (
	topHints = map[string]string{
		"vrrp_instance":          "write one instance as a [vrrp] table, several as [[instance]] tables",
		"instances":              "write one [[instance]] table per VRRP instance",
		"vrrp_sync_group":        "sync groups are not supported; put VIPs that must move together in one instance",
		"vrrp_script":            `write a [[track]] with type = "script"`,
		"virtual_server":         "write a [[frontend]] and a [[backend]]",
		"defaults":               "write per-frontend and per-backend keys, and [global] maxconn",
		"listen":                 "write a [[frontend]] and a [[backend]]",
		"nodes":                  "write one [[node]] table per host",
		"tracks":                 "write one [[track]] table per tracker",
		"frontends":              "write one [[frontend]] table per port",
		"backends":               "write one [[backend]] table per pool",
		"servers":                "servers belong in a [[backend]]: servers = [\"ip:port\", ...]",
		"virtual_ipaddress":      `write vips = ["..."] in [vrrp]`,
		"virtual_router_id":      "write vrid = N in [vrrp]",
		"stats":                  "write an [http] table",
		"global_defs":            "write [global] and [log]",
		"notify_master":          `write [notify] command = ["/path/to/script"]; it gets instance, state and priority appended`,
		"unicast_peer":           "write unicast = true in [vrrp]; the peers are the other [[node]] addresses",
		"authentication":         `write version = 2 and auth_pass = "..." in [vrrp] (or the [[instance]])`,
		"track_script":           `write a [[track]] with type = "script"`,
		"track_interface":        `write a [[track]] with type = "interface"`,
		"vrrp_garp_master_delay": "write garp_interval and garp_repeat in [vrrp]",
	}
	vrrpHints = map[string]string{
		"nopreempt":               "write preempt = false",
		"virtual_router_id":       "write vrid = N",
		"advert_int":              `did you mean "advert_interval"? it takes a duration string, e.g. advert_interval = "1s"`,
		"priorities":              "write priority = { lb1 = 150, lb2 = 100 } (per node), or priority in each [[node]]",
		"state":                   "vipd has no initial state; the highest priority wins: set priority in each [[node]]",
		"authentication":          `write version = 2 and auth_pass = "..." (keepalived's auth_type PASS; VRRPv3 has no authentication)`,
		"auth_type":               `write version = 2 and auth_pass = "..." (only PASS exists in vipd; auth_type AH is not supported)`,
		"virtual_ipaddress":       `write vips = ["192.168.30.30/24"]`,
		"vip":                     `write vips = ["..."] (a list)`,
		"unicast_peer":            "write unicast = true; the peers are the other [[node]] addresses",
		"unicast_src_ip":          "the source is this host's [[node]] address",
		"garp_master_delay":       "write garp_interval and garp_repeat",
		"garp_master_repeat":      `did you mean "garp_repeat"?`,
		"track_script":            `write a [[track]] with type = "script"`,
		"track_interface":         `write a [[track]] with type = "interface"`,
		"vrrp_version":            "write version = 2 or 3",
		"garp_lower_prio_delay_s": `write garp_lower_prio_delay = "5s"`,
	}
	nodeHints = map[string]string{
		"ip":       `write address = "192.168.30.21"`,
		"addr":     `write address = "192.168.30.21"`,
		"host":     `write name = "..." (matched against --node or the hostname) and address = "<IP>"`,
		"hostname": `write name = "..." (matched against --node or the hostname) and address = "<IP>"`,
		"state":    "vipd has no initial state; the highest priority wins",
	}
	frontendHints = map[string]string{
		"bind":            `write address = "10.0.0.5" and port = 6443`,
		"mode":            "vipd frontends are TCP (layer 4) only; remove it",
		"default_backend": `write backend = "..."`,
		"use_backend":     `write backend = "..."`,
		"timeout_client":  "write idle_timeout",
		"timeout_server":  "write idle_timeout",
		"timeout_connect": "write connect_timeout",
	}
	backendHints = map[string]string{
		"server":        `write servers = ["192.168.30.31:6443", ...]`,
		"health_check":  "write check = { type = \"tcp\" }",
		"healthcheck":   "write check = { type = \"tcp\" }",
		"send_proxy":    "write proxy_protocol = true",
		"send_proxy_v2": "write proxy_protocol = true",
		"balance":       "balance is set on the [[frontend]]",
		"mode":          "vipd backends are TCP (layer 4) only; remove it",
		"port":          `the port is part of each server ("ip:port"); check.port overrides the checked port`,
	}
	checkHints = map[string]string{
		"uri":         `write path = "/readyz"`,
		"expect":      "write expect_status = 200",
		"status":      "write expect_status = 200",
		"verify":      `write ca = "/path/ca.crt", or insecure_skip_verify = true`,
		"inter":       `write interval = "2s"`,
		"skip_verify": "did you mean \"insecure_skip_verify\"?",
	}
	httpHints = map[string]string{
		"users":    "write one [[http.user]] table per user",
		"password": `plain passwords are not accepted; write a [[http.user]] with password_hash = "$2y$..." (htpasswd -bnBC 10 "" PASSWORD | tr -d ':\n')`,
		"bind":     `write listen = "127.0.0.1:9600"`,
		"port":     `write listen = "127.0.0.1:9600"`,
	}
	userHints = map[string]string{
		"password": `plain passwords are not accepted; write password_hash = "$2y$..." (htpasswd -bnBC 10 "" PASSWORD | tr -d ':\n')`,
		"user":     `write name = "..."`,
	}
)
