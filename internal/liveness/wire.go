package liveness

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
)

// The wire format: one JSON object per line, at most maxLine bytes.
//
//	{"t":"hello","v":1,"node":"lb1","sources":["192.168.30.21"]}
//	{"t":"ping"}
//	{"t":"bye","reason":"stopping"}
//
// The UDP question and its answer:
//
//	{"t":"probe","n":12345}            -> {"t":"alive","n":12345,"node":"lb2"}
const (
	wireVersion = 1
	maxLine     = 2048
)

type message struct {
	T       string       `json:"t"`
	V       int          `json:"v,omitempty"`
	Node    string       `json:"node,omitempty"`
	Sources []netip.Addr `json:"sources,omitempty"`
	Reason  string       `json:"reason,omitempty"`
	N       uint64       `json:"n,omitempty"`
}

func writeMsg(w io.Writer, m message) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// readMsg reads one line; a line longer than maxLine or that is not a
// message is a protocol error.
func readMsg(r *bufio.Reader) (message, error) {
	line, err := r.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		return message{}, fmt.Errorf("%w: line longer than %d bytes", errProtocol, maxLine)
	}
	if err != nil {
		return message{}, err
	}
	var m message
	if err := json.Unmarshal(line, &m); err != nil || m.T == "" {
		return message{}, fmt.Errorf("%w: not a liveness message", errProtocol)
	}
	return m, nil
}
