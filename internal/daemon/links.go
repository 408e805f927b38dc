package daemon

import (
	"context"
	"fmt"
	"reflect"
	"sync"

	"github.com/vipd/vipd/internal/config"
)

// linkTrackers runs one link watcher per interface tracker ([[track]] type
// = "interface"); a reload restarts only the watchers whose tracker
// changed. (The VRRP interfaces' own links are watched by their instances.)
type linkTrackers struct {
	d *Daemon

	mu      sync.Mutex
	ctx     context.Context // Run's; nil before Run
	running map[string]linkWatch
}

type linkWatch struct {
	cfg    config.Track
	cancel context.CancelFunc
}

// start begins watching the trackers of cfg under ctx.
func (l *linkTrackers) start(ctx context.Context, cfg *config.Config) {
	l.mu.Lock()
	l.ctx = ctx
	l.running = map[string]linkWatch{}
	l.mu.Unlock()
	l.apply(cfg)
}

// apply makes the watchers those of cfg.
func (l *linkTrackers) apply(cfg *config.Config) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ctx == nil {
		return
	}
	want := map[string]config.Track{}
	for _, t := range cfg.Tracks {
		if t.Type == config.TrackInterface {
			want[t.Name] = t
		}
	}
	for name, w := range l.running {
		if t, ok := want[name]; !ok || !reflect.DeepEqual(t, w.cfg) {
			w.cancel()
			delete(l.running, name)
		}
	}
	for name, t := range want {
		if _, ok := l.running[name]; ok {
			continue
		}
		ctx, cancel := context.WithCancel(l.ctx)
		l.running[name] = linkWatch{cfg: t, cancel: cancel}
		go func() {
			err := l.d.os.WatchLink(ctx, t.Interface, func(up bool) {
				l.d.trk.set(t.Name, up, fmt.Sprintf("link %s %s", t.Interface, map[bool]string{true: "up", false: "down"}[up]))
			})
			if err != nil && ctx.Err() == nil {
				l.d.log.Error().Err(err).Str("tracker", t.Name).Msg("interface tracker stopped")
			}
		}()
	}
}
