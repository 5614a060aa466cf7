package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/huskrt/husk/conformance/benchtable"
	"github.com/huskrt/husk/conformance/critest"
	"github.com/huskrt/husk/conformance/huskdtest"
)

// BenchmarkFloor measures the floor of pod startup and ExecSync on this
// machine (issue 19.4): what the process starts they are made of cost with
// nothing around them (floor/floor.c: fork+exec; a clone into five new
// namespaces + exec, a pause's start; fork + setns into a running
// container's namespaces + fork + exec, an exec or a container joining its
// pod), beside husk's own ExecSync and pod startup measured in the same
// run, so that the distance to the floor is read off one table.
func BenchmarkFloor(b *testing.B) {
	floor := filepath.Join(b.TempDir(), "floor")
	if out, err := exec.Command("cc", "-O2", "-Wall", "-Werror", "-o", floor, "floor/floor.c").CombinedOutput(); err != nil {
		b.Fatalf("cc floor.c: %v: %s", err, out)
	}
	_, hostsDir := critest.Serve(b)
	h := huskdtest.Start(b, append(huskdtest.Config(b, fmt.Sprintf("[registry]\nconfig_path = %q\n", hostsDir)), "-v", "0")...)
	r := &runtimeUnderTest{name: "husk", rt: h.Runtime, images: h.Images, pid: h.PID, samples: map[string][]time.Duration{}}
	ctx := context.Background()
	if _, err := r.images.PullImage(ctx, &runtime.ImageSpec{Image: busyboxRef}, nil, nil); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()

	const rounds = 200
	podCfg := networkPod("floor")
	pod := r.runPod(b, podCfg)
	ctr, err := r.rt.CreateContainer(ctx, pod, sleeper("sleeper"), podCfg)
	if err == nil {
		err = r.rt.StartContainer(ctx, ctr)
	}
	if err != nil {
		b.Fatal(err)
	}
	st, err := r.rt.ContainerStatus(ctx, ctr, true)
	if err != nil {
		b.Fatal(err)
	}
	var info struct {
		Pid int `json:"pid"`
	}
	if err := json.Unmarshal([]byte(st.Info["info"]), &info); err != nil || info.Pid == 0 {
		b.Fatalf("container pid: %v (%q)", err, st.Info["info"])
	}

	measure := func(args ...string) (median, p90 float64) {
		out, err := exec.Command(floor, args...).CombinedOutput()
		if err != nil {
			b.Fatalf("floor %v: %v: %s", args, err, out)
		}
		f := strings.Fields(string(out))
		if len(f) != 3 {
			b.Fatalf("floor %v: %q", args, out)
		}
		median, _ = strconv.ParseFloat(f[1], 64)
		p90, _ = strconv.ParseFloat(f[2], 64)
		return median, p90
	}
	n := strconv.Itoa(rounds)
	forkMed, forkP90 := measure("fork", n)
	spawnMed, spawnP90 := measure("spawn", n)
	execMed, execP90 := measure("exec", strconv.Itoa(info.Pid), n)

	for i := 0; i < rounds; i++ {
		r.timed(b, "execsync", func() error {
			_, _, err := r.rt.ExecSync(ctx, ctr, []string{"true"}, 10*time.Second)
			return err
		})
	}
	for i := 0; i < 30; i++ {
		cfg := networkPod(fmt.Sprintf("floor-startup-%d", i))
		var p, c string
		r.timed(b, "startup", func() (err error) {
			if p, err = r.rt.RunPodSandbox(ctx, cfg, ""); err != nil {
				return err
			}
			if c, err = r.rt.CreateContainer(ctx, p, sleeper("sleeper"), cfg); err != nil {
				return err
			}
			return r.rt.StartContainer(ctx, c)
		})
		if err := r.rt.StopPodSandbox(ctx, p); err != nil {
			b.Fatal(err)
		}
		if err := r.rt.RemovePodSandbox(ctx, p); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()

	execSync := ms(r.samples["execsync"])
	startup := ms(r.samples["startup"])
	podFloor := spawnMed + execMed // the pause's start, then the container joining it
	fmt.Printf("\nthe floor on this machine (median, p90 in ms; %d rounds each)\n", rounds)
	fmt.Printf("%-58s %8.2f %8.2f\n", "fork + exec /bin/true", forkMed, forkP90)
	fmt.Printf("%-58s %8.2f %8.2f\n", "clone into 5 new namespaces + exec (a pause's start)", spawnMed, spawnP90)
	fmt.Printf("%-58s %8.2f %8.2f\n", "setns into a container's 5 namespaces + exec (an exec)", execMed, execP90)
	fmt.Printf("%-58s %8.2f %8.2f  (%.1fx the exec floor)\n", "husk ExecSync true", benchtable.Quantile(execSync, 0.5), benchtable.Quantile(execSync, 0.9), benchtable.Quantile(execSync, 0.5)/execMed)
	fmt.Printf("%-58s %8.2f %8.2f  (%.1fx the pod floor, %.2f ms)\n", "husk pod startup (RunPodSandbox+Create+Start, 30 rounds)", benchtable.Quantile(startup, 0.5), benchtable.Quantile(startup, 0.9), benchtable.Quantile(startup, 0.5)/podFloor, podFloor)
	b.ReportMetric(execMed, "exec-floor-ms")
	b.ReportMetric(podFloor, "pod-floor-ms")
	b.ReportMetric(0, "ns/op")
}
