package daemon

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"time"

	"github.com/vipd/vipd/internal/control"
	"github.com/vipd/vipd/internal/handoff"
	"github.com/vipd/vipd/proxy"
	"github.com/vipd/vipd/vrrp"
)

// stateFormat is the restart state's format: the JSON body below, with
// the files it indexes. A change a reader of the previous format cannot
// take is a new number, and a binary lists in handoff.Supported every
// format it reads; a child that reads none of the parent's formats gets
// the planned handover instead (version skew).
const stateFormat = handoff.Version

// restartState is what the old process hands the new one besides the
// files (FD fields index into them; -1 is none).
type restartState struct {
	PID           int       `json:"pid"`
	BinaryVersion string    `json:"binary_version"`
	Started       time.Time `json:"started"`
	// FrozenAt is when the old process stopped its loops.
	FrozenAt  time.Time            `json:"frozen_at"`
	Instances []instanceState      `json:"instances"`
	Trackers  []trackerSaved       `json:"trackers,omitempty"`
	Checks    []checkSaved         `json:"checks,omitempty"`
	Servers   []serverSaved        `json:"servers,omitempty"`
	LastDrill *control.DrillResult `json:"last_drill,omitempty"`
	ControlFD int                  `json:"control_fd"`
	HTTPFD    int                  `json:"http_fd"`
	// Proxy is the proxy's export; its FD fields index into the files
	// from ProxyBase on.
	Proxy     *proxy.Handoff `json:"proxy,omitempty"`
	ProxyBase int            `json:"proxy_base"`
}

// instanceState is one instance: its runner's snapshot, its socket, and
// enough of its plan for the new process to let go of it the planned way
// when its config no longer has it.
type instanceState struct {
	Name      string        `json:"name"`
	Solo      bool          `json:"solo,omitempty"`
	VRID      uint8         `json:"vrid"`
	Interface string        `json:"interface,omitempty"`
	Runner    vrrp.Snapshot `json:"runner"`
	ConnFD    int           `json:"conn_fd"`
	Plan      savedPlan     `json:"plan"`
}

// savedPlan is the old process's plan of an instance: what its runner
// sent and which VIPs it held.
type savedPlan struct {
	Source         netip.Addr     `json:"source"`
	Peers          []netip.Addr   `json:"peers,omitempty"`
	Unicast        bool           `json:"unicast,omitempty"`
	IPv6           bool           `json:"ipv6,omitempty"`
	Managed        []netip.Prefix `json:"managed,omitempty"`
	Announced      []netip.Addr   `json:"announced,omitempty"`
	Frontends      []string       `json:"frontends,omitempty"`
	Version        uint8          `json:"version"`
	Priority       uint8          `json:"priority"`
	AdvertInterval time.Duration  `json:"advert_interval"`
	Checksum       string         `json:"checksum,omitempty"`
	AuthPass       string         `json:"auth_pass,omitempty"`
	Siblings       []uint8        `json:"siblings,omitempty"`
}

// trackerSaved is a tracker's last verdict.
type trackerSaved struct {
	Name    string `json:"name"`
	Healthy bool   `json:"healthy"`
	Detail  string `json:"detail,omitempty"`
	Pending bool   `json:"pending,omitempty"`
}

// checkSaved is a health check's rise/fall state.
type checkSaved struct {
	Name   string `json:"name"` // checkKey.String()
	Status string `json:"status"`
	Streak int    `json:"streak,omitempty"`
	Detail string `json:"detail,omitempty"`
}

// serverSaved is a server's operator state (DRAIN, MAINT); READY ones are
// not listed.
type serverSaved struct {
	Backend string `json:"backend"`
	Server  string `json:"server"`
	Admin   string `json:"admin"`
	// DrainEnds is when a DRAIN closes what is left: the new process keeps
	// the deadline instead of starting a whole DrainTimeout again.
	DrainEnds time.Time `json:"drain_ends,omitzero"`
}

func (s *restartState) encode() ([]byte, error) {
	b, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("restart: encode state: %w", err)
	}
	return b, nil
}

// decodeState reads a state body of a format this binary reads and
// checks its file indexes against nfiles.
func decodeState(format uint16, body []byte, nfiles int) (*restartState, error) {
	if format != stateFormat {
		return nil, fmt.Errorf("restart: state format %d: %w", format, handoff.ErrVersion)
	}
	var s restartState
	if err := json.Unmarshal(body, &s); err != nil {
		return nil, fmt.Errorf("restart: decode state: %w", err)
	}
	fd := func(what string, i int) error {
		if i < -1 || i >= nfiles {
			return fmt.Errorf("restart: state: %s fd %d out of range (%d files)", what, i, nfiles)
		}
		return nil
	}
	for _, in := range s.Instances {
		if err := fd("instance "+in.Name, in.ConnFD); err != nil {
			return nil, err
		}
	}
	if err := fd("control", s.ControlFD); err != nil {
		return nil, err
	}
	if err := fd("http", s.HTTPFD); err != nil {
		return nil, err
	}
	if s.ProxyBase < 0 || s.ProxyBase > nfiles {
		return nil, fmt.Errorf("restart: state: proxy files from %d out of range (%d files)", s.ProxyBase, nfiles)
	}
	return &s, nil
}

// formatsRead lists the state formats this binary reads; a test build
// can claim others (VIPD_HANDOFF_FORMATS, see Options.Formats).
func (d *Daemon) formatsRead() []uint16 {
	if len(d.opts.Formats) > 0 {
		return d.opts.Formats
	}
	return handoff.Supported()
}
