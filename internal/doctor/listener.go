package doctor

import (
	"errors"
	"fmt"
	"strings"

	"github.com/vipd/vipd/proxy"
)

// checkListeners: something already listening on a frontend's port on the
// wildcard address takes the VIP's port too (the co-location trap:
// kube-apiserver on *:6443 on a control-plane node), and vipd cannot
// listen when it becomes MASTER. The proxy finds it from /proc/net/tcp
// without binding anything (CheckBinds); the wording, both fixes included,
// is the proxy's BindError. Something on the exact address is vipd itself
// when the running vipd says that frontend listens.
func checkListeners(plan Plan) []Finding {
	if plan.CheckBinds == nil {
		return nil
	}
	err := plan.CheckBinds()
	if err == nil {
		return nil
	}
	var errs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	} else {
		errs = []error{err}
	}
	listening := map[string]bool{}
	if plan.Running != nil {
		for _, f := range plan.Running.Frontends {
			listening[f.Name] = f.Listening
		}
	}
	var out []Finding
	for _, e := range errs {
		var be *proxy.BindError
		if !errors.As(e, &be) {
			out = append(out, couldNot(CheckListener, "", "look for listeners in the way", e))
			continue
		}
		if !be.Wildcard && listening[be.Frontend] {
			continue // the running vipd's own listener
		}
		text := strings.TrimPrefix(be.Error(), "proxy: ")
		seen, fix, ok := strings.Cut(text, " Fix: ")
		if !ok {
			fix = fmt.Sprintf("stop what listens on %s, or give frontend %q another address or port", be.Addr, be.Frontend)
		}
		out = append(out, finding(CheckListener, SevError, "", seen, fix))
	}
	return out
}
