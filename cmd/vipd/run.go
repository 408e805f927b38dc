package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/vipd/vipd/internal/config"
	"github.com/vipd/vipd/internal/daemon"
)

const usage = `vipd: one stable, highly available endpoint for a control plane.

Usage:
  vipd run     -c FILE [--node NAME]      run the daemon (VRRP + proxy + checks)
  vipd check   -c FILE [--node NAME]      validate a config file and print warnings
  vipd status  [-o json|table]            show this node: VRRP, frontends, servers
  vipd drill   failover [--instance NAME] [--hard] [--hold 10s] [--force] [-o json]
                                          hand the VIP to a backup and measure the gap
  vipd server  drain|maint|ready BACKEND/SERVER
  vipd reload                             re-read the config (same as SIGHUP)
  vipd cleanup -c FILE [--node NAME]      after vipd ended (systemd ExecStopPost): remove this
                                          node's VIPs if no live vipd holds them, once another
                                          router is master
  vipd version

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
	case "reload":
		return cmdReload(ctx, rest, stdout, stderr)
	case "cleanup":
		return cmdCleanup(ctx, rest, stdout, stderr)
	case "version", "--version", "-v":
		fmt.Fprintf(stdout, "vipd %s\n", daemon.Version)
		return 0
	case "help", "-h", "--help":
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
	d, err := daemon.New(daemon.Options{ConfigPath: *cfgPath, NodeName: *node, Log: log})
	if err != nil {
		fmt.Fprintf(stderr, "vipd: %v\n", err)
		return 1
	}

	// Terminal signals and reload are decided here, in one place, and
	// nowhere else registers for them (main does not): SIGTERM and SIGINT
	// hand the VIP over (priority 0) and exit; a second one stops at once;
	// SIGHUP reloads. ctx ending (a test's cancel) is a first terminal
	// signal too.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
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
				if s == syscall.SIGHUP {
					log.Info().Msg("SIGHUP: reloading")
					go d.Reload(runCtx)
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

func cmdCheck(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("c", "/etc/vipd/vipd.toml", "config file")
	node := fs.String("node", "", "check that this node name exists")
	if _, err := parse(fs, args); err != nil {
		return 2
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		for _, line := range strings.Split(err.Error(), "\n") {
			fmt.Fprintf(stderr, "error: %s\n", line)
		}
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
	mode := "single LB (no [vrrp]): frontends always listen"
	if cfg.VRRP != nil {
		var parts []string
		for _, in := range cfg.Instances {
			parts = append(parts, fmt.Sprintf("%s: VRRPv%d vrid %d, advert %s", in.Name, in.Version, in.VRID, in.AdvertInterval))
		}
		mode = fmt.Sprintf("%d nodes, %s", len(cfg.Nodes), strings.Join(parts, "; "))
	}
	fmt.Fprintf(stdout, "%s: ok: %s; %d frontends, %d backends, %d trackers\n", cfg.Path, mode, len(cfg.Frontends), len(cfg.Backends), len(cfg.Tracks))
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
