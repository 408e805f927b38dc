package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/vipd/vipd/internal/child"
	"github.com/vipd/vipd/internal/config"
	"github.com/vipd/vipd/internal/daemon"
	"github.com/vipd/vipd/internal/fdlimit"
	"github.com/vipd/vipd/internal/handoff"
	"github.com/vipd/vipd/internal/verify"
)

const usage = `vipd: one stable, highly available endpoint for a control plane.

Usage:
  vipd run     -c FILE [--node NAME]      run the daemon (VRRP + proxy + checks)
  vipd check   -c FILE [--node NAME] [--user USER]
                                          validate a config file and what it names
                                          (certificates, commands, socket group),
                                          as USER when given
  vipd status  [-o json|table]            show this node: VRRP, frontends, servers
  vipd drill   failover [--instance NAME] [--hard] [--hold 10s] [--force] [--bgp] [-o json]
                                          hand the VIP to a backup and measure the gap
  vipd drain   self [--undo] [-o json]    BGP mode: withdraw this node's VIPs the planned way
                                          (GRACEFUL_SHUTDOWN, drain_time, withdraw) until --undo
  vipd server  drain|maint|ready BACKEND/SERVER
                                          take a server out of rotation, or back in
  vipd reload                             re-read the config (same as SIGHUP)
  vipd restart [-o json|table]            hand the sockets and the state to the binary on disk
                                          (same as SIGUSR2): no VRRP transition, no connection cut;
                                          exit 0 once the new process runs, 1 on a rollback
  vipd import  --keepalived NAME=FILE [--keepalived NAME=FILE]... [--haproxy FILE] [--address NAME=IP]...
                                          translate keepalived.conf + haproxy.cfg into a vipd
                                          TOML on stdout; what is not carried over goes to stderr
  vipd manifest static-pod|talos -c FILE [--image REF]
                                          print a static pod / Talos patch (YAML)
  vipd completion bash|zsh                print a shell completion script
  vipd doctor  -c FILE [--node NAME] [--listen 5s] [-o json]
                                          preflight this node: interface, sysctls, firewall,
                                          VIP conflicts, VRRP heard, peers, listeners, backends;
                                          exit 0 ok, 1 warnings, 2 errors
  vipd cleanup -c FILE [--node NAME]      after vipd ended (systemd ExecStopPost): remove this
                                          node's VIPs if no live vipd holds them, once another
                                          router is master
  vipd version                            print the version

Client commands take -c FILE (the socket path is read from it) or --socket PATH
(default /run/vipd/vipd.sock).
`

// run is the whole program: main only supplies the process's context,
// arguments and streams, so tests can call it directly.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "run":
		return cmdRun(ctx, rest, stderr)
	case "check":
		return cmdCheck(rest, stdout, stderr)
	case "status":
		return cmdStatus(ctx, rest, stdout, stderr)
	case "drill":
		return cmdDrill(ctx, rest, stdout, stderr)
	case "server":
		return cmdServer(ctx, rest, stdout, stderr)
	case "drain":
		return cmdDrain(ctx, rest, stdout, stderr)
	case "reload":
		return cmdReload(ctx, rest, stdout, stderr)
	case "restart":
		return cmdRestart(ctx, rest, stdout, stderr)
	case "cleanup":
		return cmdCleanup(ctx, rest, stdout, stderr)
	case "import":
		return cmdImport(rest, stdout, stderr)
	case "manifest":
		return cmdManifest(rest, stdout, stderr)
	case "completion":
		return cmdCompletion(rest, stdout, stderr)
	case "doctor":
		return cmdDoctor(ctx, rest, stdout, stderr)
	case "version", "--version", "-v":
		fmt.Fprintf(stdout, "vipd %s\n", daemon.Version)
		return 0
	case "help", "-h", "--help":
		if len(rest) == 1 && rest[0] == "man" {
			writeManPage(stdout, loadCLIDoc()) // the package's vipd(1)
			return 0
		}
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "vipd: unknown command %q\n\n%s", cmd, usage)
	return 2
}

// parse parses flags that may come before or after positional arguments.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func newLogger(w io.Writer, level, format string) zerolog.Logger {
	lvl, err := zerolog.ParseLevel(level)
	if err != nil || level == "" {
		lvl = zerolog.InfoLevel
	}
	out := w
	if format == "console" || (format == "auto" || format == "") && isTerminal(w) {
		out = zerolog.ConsoleWriter{Out: w, TimeFormat: time.TimeOnly}
	}
	return zerolog.New(out).Level(lvl).With().Timestamp().Logger()
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func cmdRun(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("c", "/etc/vipd/vipd.toml", "config file")
	node := fs.String("node", "", "this node's [[node]] name (default: by hostname, then by local address)")
	logLevel := fs.String("log-level", "", "override [log] level (debug, info, warn, error)")
	if _, err := parse(fs, args); err != nil {
		return 2
	}
	level, format := "info", "auto"
	if cfg, err := config.Load(*cfgPath); err == nil {
		if cfg.Log.Level != "" {
			level = cfg.Log.Level
		}
		if cfg.Log.Format != "" {
			format = cfg.Log.Format
		}
	}
	if *logLevel != "" {
		level = *logLevel
	}
	log := newLogger(stderr, level, format)
	// Started by `vipd restart` (VIPD_HANDOFF_FD): take over from the
	// running vipd instead of starting from nothing.
	parent, err := handoff.FromEnv()
	if err != nil {
		fmt.Fprintf(stderr, "vipd: %v\n", err)
		return 1
	}
	if code := prepare(*cfgPath, log, stderr); code != 0 {
		return code
	}
	opts := daemon.Options{ConfigPath: *cfgPath, NodeName: *node, Log: log}
	if parent != nil {
		opts.Handoff = parent
	}
	if err := restartEnv(&opts); err != nil {
		fmt.Fprintf(stderr, "vipd: %v\n", err)
		return 1
	}
	d, err := daemon.New(opts)
	if err != nil {
		fmt.Fprintf(stderr, "vipd: %v\n", err)
		return 1
	}

	// Terminal signals, reload and restart are decided here, in one place,
	// and nowhere else registers for them (main does not): SIGTERM and
	// SIGINT hand the VIP over (priority 0) and exit; a second one stops at
	// once; SIGHUP reloads; SIGUSR2 hands everything to the binary on disk
	// (vipd restart). ctx ending (a test's cancel) is a first terminal
	// signal too.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGUSR2)
	defer signal.Stop(sigs)
	runCtx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		terminal := 0
		for {
			select {
			case <-runCtx.Done():
				return
			case <-ctx.Done():
				ctx = context.Background()
				terminal++
				log.Info().Msg("stopping: handing the VIP over first")
				d.Shutdown()
			case s := <-sigs:
				switch s {
				case syscall.SIGHUP:
					log.Info().Msg("SIGHUP: reloading")
					go d.Reload(runCtx)
					continue
				case syscall.SIGUSR2:
					log.Info().Msg("SIGUSR2: restarting (hitless: the binary on disk takes over)")
					go func() {
						res, err := d.Restart(runCtx)
						if err != nil {
							log.Error().Err(err).Msg("SIGUSR2: restart refused")
							return
						}
						log.Info().Str("outcome", res.Outcome).Int("new_pid", res.NewPID).Str("reason", res.Reason).Msg("SIGUSR2: restart done")
					}()
					continue
				}
				terminal++
				if terminal > 1 {
					log.Warn().Msg("second terminal signal: stopping now")
					cancel()
					continue
				}
				log.Info().Str("signal", s.String()).Msg("stopping: handing the VIP over first")
				d.Shutdown()
			}
		}
	}()
	if err := d.Run(runCtx); err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintf(stderr, "vipd: %v\n", err)
		return 1
	}
	return 0
}

// prepare readies the process before the daemon is built: the soft
// RLIMIT_NOFILE up to the hard limit (the default connection limit is
// computed from it), no ambient capabilities for what vipd starts, and
// what `vipd check` verifies. A file that fails verification stops vipd
// here, as it stops ExecStartPre.
func prepare(cfgPath string, log zerolog.Logger, stderr io.Writer) int {
	if _, err := fdlimit.Raise(); err != nil {
		log.Warn().Err(err).Msg("could not raise the soft RLIMIT_NOFILE to the hard limit")
	}
	if err := child.DropAmbient(); err != nil {
		// Hooks and scripts are still started from a cleared thread.
		log.Debug().Err(err).Msg("ambient capabilities not cleared process-wide")
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return 0 // daemon.New reports it
	}
	if err := verify.Config(cfg, verify.Options{Warn: func(w string) { log.Warn().Msg(w) }}); err != nil {
		fmt.Fprintf(stderr, "vipd: %v\n", err)
		return 1
	}
	b := fdlimit.ForConfig(cfg)
	log.Info().Uint64("nofile", b.NoFile).Int("reserved", b.Reserved).Int("maxconn", b.Limit()).Msg("file descriptors: " + b.String())
	if w := b.Warning(); w != "" {
		log.Warn().Msg(w)
	}
	return 0
}

func cmdCheck(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("c", "/etc/vipd/vipd.toml", "config file")
	node := fs.String("node", "", "check that this node name exists")
	as := fs.String("user", "", "check as this user (needs root), as the unit's ExecStartPre does under User=vipd")
	if _, err := parse(fs, args); err != nil {
		return 2
	}
	if *as != "" {
		return checkAs(*as, *cfgPath, *node, stdout, stderr)
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		printErrors(stderr, err)
		return 1
	}
	if *node != "" {
		if _, err := cfg.SelectNode(*node, "", nil); err != nil {
			fmt.Fprintf(stderr, "error: %v\n", err)
			return 1
		}
	}
	for _, w := range cfg.Warnings() {
		fmt.Fprintf(stdout, "warning: %s\n", w)
	}
	if err := verify.Config(cfg, verify.Options{Warn: func(w string) { fmt.Fprintf(stdout, "warning: %s\n", w) }}); err != nil {
		printErrors(stderr, err)
		return 1
	}
	b := fdlimit.ForConfig(cfg)
	if w := b.Warning(); w != "" {
		fmt.Fprintf(stdout, "warning: %s\n", w)
	}
	mode := "single LB (no [vrrp]): frontends always listen"
	if cfg.VRRP != nil {
		var parts []string
		for _, in := range cfg.Instances {
			parts = append(parts, fmt.Sprintf("%s: VRRPv%d vrid %d, advert %s", in.Name, in.Version, in.VRID, in.AdvertInterval))
		}
		mode = fmt.Sprintf("%d nodes, %s", len(cfg.Nodes), strings.Join(parts, "; "))
	}
	if b := cfg.BGP; b != nil {
		announce := fmt.Sprintf("BGP AS %d announcing %d VIPs to %d routers", b.ASN, len(b.VIPs), len(b.Peers))
		if cfg.VRRP == nil {
			mode = announce
		} else {
			mode += "; " + announce
		}
	}
	fmt.Fprintf(stdout, "%s: ok: %s; %d frontends, %d backends, %d trackers\nfile descriptors (this shell's limit; the unit sets LimitNOFILE=): %s\n",
		cfg.Path, mode, len(cfg.Frontends), len(cfg.Backends), len(cfg.Tracks), b)
	return 0
}

// checkAs runs `vipd check` again as another user: what the daemon's user
// can read is what counts (a root-only key passes a check run as root).
func checkAs(name, cfgPath, node string, stdout, stderr io.Writer) int {
	u, err := user.Lookup(name)
	if err != nil {
		fmt.Fprintf(stderr, "error: --user %s: %v\n", name, err)
		return 1
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	var groups []uint32
	if ids, err := u.GroupIds(); err == nil {
		for _, id := range ids {
			if n, err := strconv.Atoi(id); err == nil {
				groups = append(groups, uint32(n))
			}
		}
	}
	if os.Geteuid() != 0 {
		if os.Geteuid() == uid {
			return cmdCheck([]string{"-c", cfgPath, "--node", node}, stdout, stderr)
		}
		fmt.Fprintf(stderr, "error: --user %s: only root can check as another user\n", name)
		return 1
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintf(stderr, "error: %v\n", err)
		return 1
	}
	abs, _ := filepath.Abs(cfgPath)
	cmd := exec.Command(self, "check", "-c", abs, "--node", node)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: groups}}
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		fmt.Fprintf(stderr, "error: check as %s: %v\n", name, err)
		return 1
	}
	return 0
}

func cmdCleanup(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("cleanup", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("c", "/etc/vipd/vipd.toml", "config file")
	node := fs.String("node", "", "this node's [[node]] name (default: by hostname, then by local address)")
	if _, err := parse(fs, args); err != nil {
		return 2
	}
	err := daemon.Cleanup(ctx, daemon.CleanupOptions{ConfigPath: *cfgPath, NodeName: *node, Out: stdout, Log: newLogger(stderr, "warn", "auto")})
	if err != nil {
		fmt.Fprintf(stderr, "vipd cleanup: %v\n", err)
		return 1
	}
	return 0
}
