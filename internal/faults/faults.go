// Package faults lets the integration tests crash huskd at a named point
// inside a call: huskd killed there, as by the OOM killer or a node's
// power, must recover to an exact state (docs/architecture.md, Restart and
// recovery). Point is a no-op that compiles away unless huskd is built
// with the tag husk_faults, which only the race build of `make
// race-build` (bin-race/, what the integration tests run) has; a release
// huskd ignores $HUSK_FAULT_POINT.
package faults

import (
	"strconv"
	"strings"
)

// EnvVar names the point at which a huskd built with husk_faults kills
// itself: "Call/step" for its first hit, "Call/step#n" for its n-th; a
// comma-separated list arms several.
const EnvVar = "HUSK_FAULT_POINT"

// parse reads EnvVar's value; an entry whose count is not a positive
// number arms its first hit.
func parse(v string) map[string]int {
	m := map[string]int{}
	for _, e := range strings.Split(v, ",") {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		name, n := e, 1
		if i := strings.LastIndexByte(e, '#'); i >= 0 {
			name = e[:i]
			if k, err := strconv.Atoi(e[i+1:]); err == nil && k > 0 {
				n = k
			}
		}
		m[name] = n
	}
	return m
}
