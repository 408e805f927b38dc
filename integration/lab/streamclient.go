//go:build linux

package lab

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"time"
)

// ProbeFail is one failed new connection of the stream client's prober.
type ProbeFail struct {
	At  time.Time `json:"at"`
	Err string    `json:"err"`
}

// ProbeStats are the prober's figures: a new connection every
// VIPD_STREAM_PROBE (connect, send a probe header, read the reply, close).
type ProbeStats struct {
	Attempts int         `json:"attempts"`
	Failed   int         `json:"failed"`
	Fails    []ProbeFail `json:"fails,omitempty"` // the first 2000
	MaxMs    float64     `json:"max_ms"`          // slowest successful attempt
}

// StreamClientReport is what the "streamcli" role writes at the end.
type StreamClientReport struct {
	Streams []StreamSide `json:"streams"`
	Probe   ProbeStats   `json:"probe"`
}

// streamMode is the mode of connection i: one in ten half-closes each way.
func streamMode(i int) int {
	switch i % 10 {
	case 3:
		return ModeC2SHalf
	case 7:
		return ModeS2CHalf
	}
	return ModeBoth
}

// streamClientMain is the "streamcli" role: it opens VIPD_STREAM_N streams
// to VIPD_STREAM_TARGET, prints "ready" once every one has received
// bytes, probes new connections, and on "end" finishes every stream,
// waits up to VIPD_STREAM_DRAIN for the server's side to end, writes its
// StreamClientReport to VIPD_STREAM_OUT and prints "done".
func streamClientMain() int {
	e := readStreamEnv()
	target := os.Getenv("VIPD_STREAM_TARGET")
	n, _ := strconv.Atoi(os.Getenv("VIPD_STREAM_N"))
	if n < 0 || n > 100_000 {
		fmt.Fprintln(os.Stderr, "streamcli: bad VIPD_STREAM_N")
		return 2
	}
	drain, err := time.ParseDuration(os.Getenv("VIPD_STREAM_DRAIN"))
	if err != nil || drain <= 0 {
		drain = 20 * time.Second
	}
	probeEvery, _ := time.ParseDuration(os.Getenv("VIPD_STREAM_PROBE"))
	half, end := make(chan struct{}), make(chan struct{})
	go commands(half, end)

	streams := make([]*stream, n)
	conns := make([]*net.TCPConn, n)
	sem := make(chan struct{}, 64)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			var c net.Conn
			var err error
			for try := 0; try < 5; try++ {
				if c, err = net.DialTimeout("tcp", target, 5*time.Second); err == nil {
					if err = writeHeader(c, uint32(i), streamMode(i)); err == nil {
						break
					}
					c.Close()
				}
				time.Sleep(100 * time.Millisecond)
			}
			if err != nil {
				mu.Lock()
				firstErr = cmpErr(firstErr, err)
				mu.Unlock()
				return
			}
			conns[i] = c.(*net.TCPConn)
		})
	}
	wg.Wait()
	if firstErr != nil {
		fmt.Printf("error opening %d streams: %v\n", n, firstErr)
		return 1
	}
	var rw sync.WaitGroup
	for i, c := range conns {
		s := &stream{side: StreamSide{ID: uint32(i), Mode: streamMode(i)}, readDone: make(chan struct{})}
		streams[i] = s
		rw.Go(func() { s.readSide(c, StreamSeed(uint32(i), 1)) })
		closeOn := []<-chan struct{}{end}
		if s.side.Mode == ModeC2SHalf {
			closeOn = append(closeOn, half)
		}
		rw.Go(func() { s.writeSide(c, StreamSeed(uint32(i), 0), e, closeOn...) })
	}
	// Ready once every stream has data from the server: each is proven
	// end to end.
	deadline := time.Now().Add(60 * time.Second)
	for {
		waiting := 0
		for _, s := range streams {
			if s.snapshot().Recv == 0 {
				waiting++
			}
		}
		if waiting == 0 {
			break
		}
		if time.Now().After(deadline) {
			fmt.Printf("error %d of %d streams got no data in 60s\n", waiting, n)
			return 1
		}
		time.Sleep(50 * time.Millisecond)
	}
	var probe ProbeStats
	probeDone := make(chan struct{})
	go func() { defer close(probeDone); probe = runProbes(target, probeEvery, end) }()
	fmt.Println("ready")

	<-end
	<-probeDone
	// Every stream's write side shuts at "end"; the server then shuts its
	// own. Wait for the read sides, then cut the stragglers short.
	drained := make(chan struct{})
	go func() {
		for _, s := range streams {
			<-s.readDone
		}
		close(drained)
	}()
	select {
	case <-drained:
	case <-time.After(drain):
		for _, c := range conns {
			c.SetReadDeadline(time.Now())
		}
	}
	rw.Wait()
	rep := StreamClientReport{Probe: probe}
	for i, s := range streams {
		rep.Streams = append(rep.Streams, s.snapshot())
		conns[i].Close()
	}
	b, err := json.Marshal(rep)
	if err == nil {
		err = os.WriteFile(os.Getenv("VIPD_STREAM_OUT"), b, 0o644)
	}
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	fmt.Println("done")
	return 0
}

func cmpErr(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

// runProbes starts a new connection every `every` (0: none) until stop,
// at most 100 at a time, each on its own so an outage counts one failure
// per tick.
func runProbes(target string, every time.Duration, stop <-chan struct{}) ProbeStats {
	var st ProbeStats
	if every <= 0 {
		return st
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	inflight := make(chan struct{}, 100)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for n := 0; n < 10_000_000; n++ {
		select {
		case <-stop:
			wg.Wait()
			return st
		case <-tick.C:
		}
		select {
		case inflight <- struct{}{}:
		default:
			mu.Lock()
			st.Attempts++
			st.Failed++
			if len(st.Fails) < 2000 {
				st.Fails = append(st.Fails, ProbeFail{At: time.Now(), Err: "100 attempts in flight"})
			}
			mu.Unlock()
			continue
		}
		wg.Go(func() {
			defer func() { <-inflight }()
			at := time.Now()
			err := probeStream(target)
			ms := float64(time.Since(at).Microseconds()) / 1000
			mu.Lock()
			defer mu.Unlock()
			st.Attempts++
			if err != nil {
				st.Failed++
				if len(st.Fails) < 2000 {
					st.Fails = append(st.Fails, ProbeFail{At: at, Err: err.Error()})
				}
				return
			}
			st.MaxMs = max(st.MaxMs, ms)
		})
	}
	wg.Wait()
	return st
}

// probeStream is one new connection: connect, probe header, the server's
// reply, close.
func probeStream(target string) error {
	c, err := net.DialTimeout("tcp", target, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	if err := writeHeader(c, 0, ModeProbe); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	got := make([]byte, len(probeReply))
	if _, err := io.ReadFull(c, got); err != nil {
		return fmt.Errorf("read: %w", err)
	}
	if !bytes.Equal(got, probeReply) {
		return fmt.Errorf("reply %q", got)
	}
	return nil
}
