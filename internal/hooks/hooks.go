// Package hooks runs the [notify] command on VRRP transitions, as
// keepalived runs its notify scripts, with three promises keepalived's
// users have long asked for:
//
//   - Order: hooks run one at a time, in the order of the transitions, each
//     with a sequence number and the transition's time in its environment.
//     A hook never sees BACKUP after MASTER when the instance went BACKUP
//     then MASTER.
//   - Bounds: a hook is killed with its whole process group at the timeout
//     ([notify] timeout, default config.DefaultNotifyTimeout); only the last
//     512 bytes of its output are kept (for the log); at most QueueSize
//     transitions wait. When the queue is full the oldest waiting one is
//     dropped and counted, so the newest state always reaches the hook; the
//     gap shows in VIPD_SEQ and the log says how many were dropped.
//   - No privileges: hooks start without vipd's ambient capabilities
//     (internal/child), and under the shipped unit's NoNewPrivileges=yes
//     they cannot gain any (no sudo).
//
// The command gets the instance, the new state and the priority appended
// to its argv (keepalived's order), and in its environment:
//
//	VIPD_SEQ         1, 2, 3... per vipd process
//	VIPD_TIME        the transition's time, RFC 3339 with nanoseconds, UTC
//	VIPD_INSTANCE    the instance name ("vrid-51")
//	VIPD_STATE       the new state (MASTER, BACKUP, FAULT, INIT)
//	VIPD_PREV_STATE  the state it left
//	VIPD_PRIORITY    the effective priority
//
// The variables systemd gives vipd (NOTIFY_SOCKET, WATCHDOG_*, LISTEN_*)
// are not passed on.
package hooks

import (
	"context"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/vipd/vipd/internal/child"
	"github.com/vipd/vipd/internal/config"
)

// QueueSize bounds the transitions waiting for their hook.
const QueueSize = 64

// outputTail is how much of a hook's output is kept for the log.
const outputTail = 512

// Transition is one state change to report.
type Transition struct {
	Instance string
	From, To string
	Priority int
	At       time.Time
}

type job struct {
	seq     uint64
	t       Transition
	argv    []string
	timeout time.Duration
}

// Runner delivers transitions to the hook in order. The zero value is not
// usable; use New. Its methods are safe for concurrent use.
type Runner struct {
	log zerolog.Logger

	mu      sync.Mutex
	seq     uint64
	queue   []job
	running bool          // a worker goroutine is draining the queue
	idle    chan struct{} // closed when the worker stops; nil while none ran
	dropped uint64        // dropped since the last warning
}

// New returns a Runner that logs to log.
func New(log zerolog.Logger) *Runner {
	return &Runner{log: log}
}

// Deliver queues t for the hook of cfg (nil or without a command: nothing
// to run) and returns at once. The command and timeout are those of cfg
// now: a reload between the transition and the hook does not change them.
func (r *Runner) Deliver(cfg *config.Notify, t Transition) {
	if cfg == nil || len(cfg.Command) == 0 {
		return
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = config.DefaultNotifyTimeout
	}
	argv := append(slices.Clone(cfg.Command), t.Instance, t.To, strconv.Itoa(t.Priority))
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seq++
	if len(r.queue) >= QueueSize {
		r.queue = r.queue[1:]
		r.dropped++
	}
	r.queue = append(r.queue, job{seq: r.seq, t: t, argv: argv, timeout: timeout})
	if !r.running {
		r.running = true
		r.idle = make(chan struct{})
		go r.work(r.idle)
	}
}

// Wait returns once no hook is running or waiting, or when ctx is done.
func (r *Runner) Wait(ctx context.Context) error {
	r.mu.Lock()
	idle := r.idle
	r.mu.Unlock()
	if idle == nil {
		return nil
	}
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// work runs the queued jobs one at a time and exits when the queue is
// empty, closing idle.
func (r *Runner) work(idle chan struct{}) {
	for {
		r.mu.Lock()
		if len(r.queue) == 0 {
			r.running = false
			close(idle)
			r.mu.Unlock()
			return
		}
		j := r.queue[0]
		r.queue = r.queue[1:]
		dropped := r.dropped
		r.dropped = 0
		r.mu.Unlock()
		if dropped > 0 {
			r.log.Warn().Uint64("dropped", dropped).Int("queue", QueueSize).Uint64("next_seq", j.seq).
				Msg("notify hooks fell behind: the oldest waiting transitions were not delivered (VIPD_SEQ shows the gap)")
		}
		r.run(j)
	}
}

func (r *Runner) run(j job) {
	ctx, cancel := context.WithTimeout(context.Background(), j.timeout)
	defer cancel()
	out := &child.Tail{Max: outputTail}
	cmd := child.Command(ctx, j.argv)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Env = environ(j)
	start := time.Now()
	err := child.Run(cmd)
	took := time.Since(start)
	log := r.log.With().Strs("argv", j.argv).Uint64("seq", j.seq).Dur("took", took).Logger()
	switch {
	case ctx.Err() != nil:
		log.Warn().Dur("timeout", j.timeout).Str("output", out.Lines()).
			Msg("notify command killed at its timeout (with its process group)")
	case err != nil:
		log.Warn().Err(err).Str("output", out.Lines()).Msg("notify command failed")
	default:
		log.Debug().Msg("notify command done")
	}
}

// environ is vipd's environment without what systemd meant for vipd alone
// and without inherited VIPD_ variables, plus the transition.
func environ(j job) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case k == "NOTIFY_SOCKET", strings.HasPrefix(k, "WATCHDOG_"), strings.HasPrefix(k, "LISTEN_"), strings.HasPrefix(k, "VIPD_"):
			continue
		}
		env = append(env, kv)
	}
	return append(env,
		"VIPD_SEQ="+strconv.FormatUint(j.seq, 10),
		"VIPD_TIME="+j.t.At.UTC().Format(time.RFC3339Nano),
		"VIPD_INSTANCE="+j.t.Instance,
		"VIPD_STATE="+j.t.To,
		"VIPD_PREV_STATE="+j.t.From,
		"VIPD_PRIORITY="+strconv.Itoa(j.t.Priority),
	)
}
