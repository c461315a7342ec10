// SPDX-License-Identifier: GPL-2.0
/* Views the kernel itself serves: each program here is a cgroup iterator
 * that sysbox-fs attaches to one container's cgroup and pins in bpffs; the
 * runtime binds the pinned file over the container's /proc path. Reading it
 * runs the program in the reader's own read(2): fresh text on every read
 * from offset 0 (seq_file, like procfs), and no round trip to a daemon.
 *
 * Only the unified (cgroup v2) hierarchy's cgroup is used: on a v1 host
 * with a unified mount the runtime's cgroup there still counts the tasks'
 * CPU time.
 */
#include "views.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

/* What the daemon knows of a container and the kernel does not keep: when
 * its init started (CLOCK_BOOTTIME, ns) and how many CPUs it may use. */
struct view_cfg {
	__u64 start_ns;
	__u32 ncpu;
	__u32 pad;
};

/* Keyed by the cgroup's id (its inode number in cgroupfs). Pinned by name
 * so a restarted daemon shares it with the links the old one left. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct view_cfg);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sysbox_views SEC(".maps");

/* Text the daemon renders and the kernel serves: /proc/loadavg, which the
 * daemon's load sampler recomputes every 5 s (as the kernel does the
 * machine's), so a read between two samples shows the same either way. */
struct view_text {
	__u32 len;
	__u32 pad;
	char text[120];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct view_text);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sysbox_loadavg SEC(".maps");

extern void css_rstat_flush(struct cgroup_subsys_state *css) __ksym;

/* /proc/uptime: seconds since the container's init started, and the
 * seconds its CPUs idled: uptime times its CPU count less the CPU time its
 * tasks used (never below zero), as the daemon's own renderer writes it. */
SEC("iter.s/cgroup")
int uptime(struct bpf_iter__cgroup *ctx)
{
	struct seq_file *seq = ctx->meta->seq;
	struct cgroup *cg = ctx->cgroup;
	struct view_cfg *cfg;
	__u64 id, now, up, used, idle;

	if (!cg)
		return 0;
	id = cg->kn->id;
	cfg = bpf_map_lookup_elem(&sysbox_views, &id);
	now = bpf_ktime_get_boot_ns();
	if (!cfg) {
		/* Not (or no longer) registered: the host's uptime, as if no
		 * view were there, rather than an empty file. */
		up = now;
		idle = 0;
	} else {
		up = now > cfg->start_ns ? now - cfg->start_ns : 0;
		/* The base CPU stats are summed from per-CPU counters when
		 * flushed; cpu.stat flushes the same way before it prints. */
		css_rstat_flush(&cg->self);
		used = cg->bstat.cputime.sum_exec_runtime;
		idle = up * cfg->ncpu;
		idle = idle > used ? idle - used : 0;
	}
	/* Centiseconds, truncated, as the kernel's uptime_proc_show. */
	up /= 10000000;
	idle /= 10000000;
	BPF_SEQ_PRINTF(seq, "%llu.%02llu %llu.%02llu\n", up / 100, up % 100, idle / 100, idle % 100);
	return 0;
}

/* /proc/loadavg: the container's load, as the daemon last sampled it. */
SEC("iter/cgroup")
int loadavg(struct bpf_iter__cgroup *ctx)
{
	struct seq_file *seq = ctx->meta->seq;
	struct cgroup *cg = ctx->cgroup;
	struct view_text *v;
	__u64 id;
	__u32 n;

	if (!cg)
		return 0;
	id = cg->kn->id;
	v = bpf_map_lookup_elem(&sysbox_loadavg, &id);
	if (!v)
		return 0;
	n = v->len;
	if (n > sizeof(v->text))
		n = sizeof(v->text);
	bpf_seq_write(seq, v->text, n);
	return 0;
}
