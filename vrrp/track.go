package vrrp

import (
	"fmt"
	"strings"
)

// TrackerState is one tracker's latest verdict and its keepalived weight.
type TrackerState struct {
	Name    string
	Weight  int // > 0 adds when healthy, < 0 subtracts when failing, 0 = FAULT when failing
	Healthy bool
}

// EffectivePriority applies keepalived's tracker semantics to a configured
// priority: a positive weight is added while its tracker is healthy, a
// negative weight is added (subtracted) while it fails, and a failing
// weight-0 tracker puts the instance in FAULT. The result is clamped to
// 1..254, because 0 means "master leaving" and 255 "address owner". The
// owner (base 255) is never adjusted, but can still fault.
//
// reason names the base and every tracker that moved the result, for the
// log line and the PriorityChanged event, e.g.
// "base 150, apiserver -60 (failing)".
func EffectivePriority(base uint8, trackers []TrackerState) (prio uint8, fault bool, reason string) {
	owner := base == ownerPriority
	p := int(base)
	parts := []string{fmt.Sprintf("base %d", base)}
	ignored := false
	for _, t := range trackers {
		switch {
		case t.Weight == 0 && !t.Healthy:
			fault = true
			parts = append(parts, t.Name+" fault (failing)")
		case t.Weight > 0 && t.Healthy, t.Weight < 0 && !t.Healthy:
			if owner {
				ignored = true
				continue
			}
			p += t.Weight
			state := "healthy"
			if !t.Healthy {
				state = "failing"
			}
			parts = append(parts, fmt.Sprintf("%s %+d (%s)", t.Name, t.Weight, state))
		}
	}
	switch {
	case owner:
		if ignored {
			parts = append(parts, "owner: weights ignored")
		}
	case p < 1:
		p = 1
		parts = append(parts, "clamped to 1")
	case p > ownerPriority-1:
		p = ownerPriority - 1
		parts = append(parts, "clamped to 254")
	}
	return uint8(p), fault, strings.Join(parts, ", ")
}
