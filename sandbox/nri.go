package sandbox

import (
	"github.com/containerd/nri/pkg/api"
)

// NRI is the pod as NRI plugins see it.
func (sb *Sandbox) NRI() *api.PodSandbox {
	md := sb.Metadata()
	p := &api.PodSandbox{
		Id:             sb.ID,
		Name:           md.GetName(),
		Uid:            md.GetUid(),
		Namespace:      md.GetNamespace(),
		Labels:         sb.Config.GetLabels(),
		Annotations:    sb.Config.GetAnnotations(),
		RuntimeHandler: sb.RuntimeHandler,
		Pid:            uint32(max(sb.PausePID, 0)),
		Ips:            sb.IPs,
		Linux: &api.LinuxPodSandbox{
			CgroupParent: sb.Config.GetLinux().GetCgroupParent(),
			CgroupsPath:  sb.CgroupPath,
		},
	}
	for _, kind := range []string{NSNet, NSIPC, NSUTS, NSUser} {
		if path, ok := sb.Namespaces[kind]; ok {
			nsType := kind
			if kind == NSNet {
				nsType = "network"
			}
			p.Linux.Namespaces = append(p.Linux.Namespaces, &api.LinuxNamespace{Type: nsType, Path: path})
		}
	}
	return p
}
