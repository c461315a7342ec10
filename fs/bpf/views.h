/* The kernel types views.bpf.c reads, declared by hand with only the fields
 * it uses: preserve_access_index makes clang record each access by field
 * name (CO-RE), and the loader fixes the offsets against the running
 * kernel's BTF. No generated vmlinux.h. */
#ifndef SYSBOX_VIEWS_H
#define SYSBOX_VIEWS_H

#include <linux/types.h>
#include <linux/bpf.h>

#define CORE __attribute__((preserve_access_index))

struct seq_file;

struct bpf_iter_meta {
	struct seq_file *seq;
} CORE;

struct kernfs_node {
	__u64 id;
} CORE;

struct cgroup_subsys_state {
	struct cgroup *cgroup;
} CORE;

struct task_cputime {
	unsigned long long sum_exec_runtime;
} CORE;

struct cgroup_base_stat {
	struct task_cputime cputime;
} CORE;

struct cgroup {
	struct cgroup_subsys_state self;
	struct kernfs_node *kn;
	struct cgroup_base_stat bstat;
} CORE;

struct bpf_iter__cgroup {
	struct bpf_iter_meta *meta;
	struct cgroup *cgroup;
} CORE;

#endif
