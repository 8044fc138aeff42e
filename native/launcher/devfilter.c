#include "devfilter.h"

#include "err.h"
#include "plan.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* The program, for a default D and exceptions E1..En:
 *
 *   r2 = ctx->access_type; r3 = r2 & 0xffff (device type); r2 >>= 16 (access); r4 = major; r5 = minor
 *   for each Ei:  [r3 != type → next]  r1 = r2 & mask; [r1 test → next]  [r4 != major → next]
 *                 [r5 != minor → next]  r0 = !D; exit
 *   r0 = D; exit
 *
 * With D deny (a whitelist) an exception matches when it grants every access asked for (mask: what it
 * does not grant, none of which may be asked); with D allow it matches when it denies any of them. That is
 * how the v1 controller matches its exceptions. */

static struct bpf_insn *prog;
static size_t nprog, capprog;

static void emit(struct bpf_insn i)
{
	if (nprog == capprog) {
		capprog = capprog ? 2 * capprog : 64;
		prog = realloc(prog, capprog * sizeof *prog);
		if (!prog)
			abort();
	}
	prog[nprog++] = i;
}

static struct bpf_insn ins(__u8 code, __u8 dst, __u8 src, __s16 off, __s32 imm)
{
	return (struct bpf_insn){ .code = code, .dst_reg = dst, .src_reg = src, .off = off, .imm = imm };
}

#define LDX_W(dst, src, off) ins(BPF_LDX | BPF_MEM | BPF_W, dst, src, off, 0)
#define MOV32_REG(dst, src) ins(BPF_ALU | BPF_MOV | BPF_X, dst, src, 0, 0)
#define MOV32_IMM(dst, imm) ins(BPF_ALU | BPF_MOV | BPF_K, dst, 0, 0, imm)
#define AND32_IMM(dst, imm) ins(BPF_ALU | BPF_AND | BPF_K, dst, 0, 0, imm)
#define RSH32_IMM(dst, imm) ins(BPF_ALU | BPF_RSH | BPF_K, dst, 0, 0, imm)
#define JNE_IMM(dst, imm, off) ins(BPF_JMP | BPF_JNE | BPF_K, dst, 0, off, imm)
#define JEQ_IMM(dst, imm, off) ins(BPF_JMP | BPF_JEQ | BPF_K, dst, 0, off, imm)
#define EXIT() ins(BPF_JMP | BPF_EXIT, 0, 0, 0, 0)

static int access_bits(const char *a)
{
	int bits = 0;
	for (; *a; a++)
		bits |= *a == 'm' ? BPF_DEVCG_ACC_MKNOD : *a == 'r' ? BPF_DEVCG_ACC_READ : BPF_DEVCG_ACC_WRITE;
	return bits;
}

static void build(const struct plan *p)
{
	int whitelist = !p->devfilter_allow;
	nprog = 0;
	emit(LDX_W(BPF_REG_2, BPF_REG_1, 0)); /* struct bpf_cgroup_dev_ctx: access_type, major, minor */
	emit(MOV32_REG(BPF_REG_3, BPF_REG_2));
	emit(AND32_IMM(BPF_REG_3, 0xffff));
	emit(RSH32_IMM(BPF_REG_2, 16));
	emit(LDX_W(BPF_REG_4, BPF_REG_1, 4));
	emit(LDX_W(BPF_REG_5, BPF_REG_1, 8));
	for (size_t i = 0; i < p->ndevexs; i++) {
		const struct pdevex *e = &p->devexs[i];
		/* the block's length: its tests (type, access, major, minor), each jumping past the block when it
		 * fails, the mov and and that compute the access test's operand, and r0 = ...; exit */
		int tests = (e->type != 'a') + 1 + e->has_major + e->has_minor;
		int left = tests + 2 + 2;
		int acc = access_bits(e->access);
		/* the offset of a jump is counted from the next instruction to the end of the block */
		size_t end = nprog + (size_t)left;
		if (e->type != 'a')
			emit(JNE_IMM(BPF_REG_3, e->type == 'b' ? BPF_DEVCG_DEV_BLOCK : BPF_DEVCG_DEV_CHAR,
				     (__s16)(end - nprog - 1)));
		emit(MOV32_REG(BPF_REG_1, BPF_REG_2));
		emit(AND32_IMM(BPF_REG_1, whitelist ? ~acc & 7 : acc));
		emit(whitelist ? JNE_IMM(BPF_REG_1, 0, (__s16)(end - nprog - 1)) : JEQ_IMM(BPF_REG_1, 0, (__s16)(end - nprog - 1)));
		if (e->has_major)
			emit(JNE_IMM(BPF_REG_4, (__s32)e->major, (__s16)(end - nprog - 1)));
		if (e->has_minor)
			emit(JNE_IMM(BPF_REG_5, (__s32)e->minor, (__s16)(end - nprog - 1)));
		emit(MOV32_IMM(BPF_REG_0, whitelist));
		emit(EXIT());
	}
	emit(MOV32_IMM(BPF_REG_0, p->devfilter_allow));
	emit(EXIT());
}

int devfilter_attach(const struct plan *p)
{
	if (!p->devfilter_dir)
		return 0;
	build(p);
	char log[4096] = "";
	union bpf_attr load;
	memset(&load, 0, sizeof load);
	load.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
	load.insns = (__u64)(unsigned long)prog;
	load.insn_cnt = (__u32)nprog;
	load.license = (__u64)(unsigned long)"Apache-2.0";
	load.log_buf = (__u64)(unsigned long)log;
	load.log_size = sizeof log;
	load.log_level = 1;
	int pfd = (int)syscall(SYS_bpf, BPF_PROG_LOAD, &load, sizeof load);
	if (pfd < 0 && errno == ENOSPC) { /* the verifier's log did not fit: load again without it */
		load.log_level = 0, load.log_buf = 0, load.log_size = 0;
		pfd = (int)syscall(SYS_bpf, BPF_PROG_LOAD, &load, sizeof load);
	}
	if (pfd < 0) {
		char *nl = strrchr(log, '\n');
		if (nl && nl == log + strlen(log) - 1)
			*nl = 0;
		return fail("devfilter", errno, "load the device program (%zu instructions)%s%.300s", nprog,
			    log[0] ? ": " : "", log);
	}
	int cfd = open(p->devfilter_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cfd < 0) {
		int e = errno;
		close(pfd);
		return fail("devfilter", e, "%s", p->devfilter_dir);
	}
	union bpf_attr attach;
	memset(&attach, 0, sizeof attach);
	attach.target_fd = (__u32)cfd;
	attach.attach_bpf_fd = (__u32)pfd;
	attach.attach_type = BPF_CGROUP_DEVICE;
	attach.attach_flags = BPF_F_ALLOW_MULTI;
	int r = (int)syscall(SYS_bpf, BPF_PROG_ATTACH, &attach, sizeof attach);
	int e = errno;
	close(cfd);
	close(pfd); /* the attachment holds the program */
	if (r < 0)
		return fail("devfilter", e, "attach the device program to %s", p->devfilter_dir);
	return 0;
}
