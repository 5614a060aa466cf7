package ginkgoreport

import (
	"bufio"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"
)

// A ratchet file lists the specs of a suite that pass against huskd, one
// full spec text per line (# starts a comment). CI fails when one of them
// stops passing; the list only grows.

// ReadExpected reads a ratchet file.
func ReadExpected(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var names []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line != "" && !strings.HasPrefix(line, "#") {
			names = append(names, line)
		}
	}
	return names, sc.Err()
}

// Focused keeps the expected specs that the focus regexp f matches, as
// ginkgo's focus selects specs to run.
func Focused(expected []string, f string) ([]string, error) {
	re, err := regexp.Compile(f)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, name := range expected {
		if re.MatchString(name) {
			out = append(out, name)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%q matches no spec the ratchet lists", f)
	}
	return out, nil
}

// Ratchet compares a run with the specs expected to pass: broken says, for
// each expected spec that did not pass, what happened to it; newly lists
// the specs that passed and are not expected yet.
func Ratchet(expected []string, specs []Spec) (broken, newly []string) {
	byName := map[string]Spec{}
	for _, s := range specs {
		byName[s.Name] = s
	}
	listed := map[string]bool{}
	for _, name := range expected {
		listed[name] = true
		switch s, ok := byName[name]; {
		case !ok:
			broken = append(broken, "not run: "+name)
		case s.State != "passed":
			broken = append(broken, fmt.Sprintf("%s: %s\n    %s", s.State, name, s.Message))
		}
	}
	for _, s := range specs {
		if s.State == "passed" && !listed[s.Name] {
			newly = append(newly, s.Name)
		}
	}
	sort.Strings(newly)
	return broken, newly
}

// OneLine is s on one line, cut at max bytes: a failure message in a
// summary.
func OneLine(s string, max int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > max {
		s = s[:max] + "…"
	}
	return s
}
