/* Reads the build information the Go linker puts into every executable (section .go.buildinfo, read by
 * `go version -m`): since Go 1.18 a 32-byte header "\xff Go buildinf:" <ptr size> <flags>, and with flag
 * bit 2 set, two varint-prefixed strings inline: the Go version, then the module info, whose first line
 * (after a 16-byte sentinel) is "path\t<import path of the main package>". containerd 1.x is built from
 * module github.com/containerd/containerd, 2.x from github.com/containerd/containerd/v2. */
#include "gobuild.h"
#include "util.h"

#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAGIC "\xff Go buildinf:"
#define MAGIC_LEN 14
#define SEARCH_MAX (64 * 1024) /* what Go's debug/buildinfo searches when there is no section */
#define MODULE "github.com/containerd/containerd/v"

int gobuild_main_is_containerd_ge2(const char *pkg, size_t len)
{
	size_t m = sizeof MODULE - 1, i = m;
	if (len <= m || memcmp(pkg, MODULE, m) != 0)
		return 0;
	unsigned long major = 0;
	while (i < len && pkg[i] >= '0' && pkg[i] <= '9' && major < 1000)
		major = major * 10 + (unsigned long)(pkg[i++] - '0');
	return i > m && pkg[m] != '0' && major >= 2 && (i == len || pkg[i] == '/');
}

static int pread_all(int fd, void *p, size_t n, uint64_t off)
{
	size_t got = 0;
	while (got < n) {
		ssize_t r = pread(fd, (char *)p + got, n - got, (off_t)(off + got));
		if (r <= 0)
			return -1;
		got += (size_t)r;
	}
	return 0;
}

/* File offset and size of .go.buildinfo, else of the first writable PT_LOAD segment (at most
 * SEARCH_MAX bytes of it). 0, or -1 when the file is not an ELF executable of our own class. */
static int find_buildinfo(int fd, uint64_t *off, uint64_t *size)
{
	ElfW(Ehdr) eh;
	if (pread_all(fd, &eh, sizeof eh, 0) < 0 || memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 ||
	    eh.e_ident[EI_CLASS] != (sizeof(void *) == 8 ? ELFCLASS64 : ELFCLASS32))
		return -1;
	if (eh.e_shentsize == sizeof(ElfW(Shdr)) && eh.e_shnum > 0 && eh.e_shnum < 4096 &&
	    eh.e_shstrndx < eh.e_shnum) {
		size_t n = eh.e_shnum;
		ElfW(Shdr) *sh = xrealloc(NULL, n * sizeof *sh);
		char *names = NULL;
		int found = 0;
		if (pread_all(fd, sh, n * sizeof *sh, eh.e_shoff) == 0 && sh[eh.e_shstrndx].sh_size < 65536) {
			size_t nlen = sh[eh.e_shstrndx].sh_size;
			names = xrealloc(NULL, nlen + 1);
			if (pread_all(fd, names, nlen, sh[eh.e_shstrndx].sh_offset) == 0) {
				names[nlen] = '\0';
				for (size_t i = 0; i < n && !found; i++) {
					if (sh[i].sh_name < nlen && strcmp(names + sh[i].sh_name, ".go.buildinfo") == 0 &&
					    sh[i].sh_type != SHT_NOBITS) {
						*off = sh[i].sh_offset;
						*size = sh[i].sh_size;
						found = 1;
					}
				}
			}
		}
		free(names);
		free(sh);
		if (found)
			return 0;
	}
	if (eh.e_phentsize != sizeof(ElfW(Phdr)) || eh.e_phnum == 0 || eh.e_phnum > 4096)
		return -1;
	for (size_t i = 0; i < eh.e_phnum; i++) {
		ElfW(Phdr) ph;
		if (pread_all(fd, &ph, sizeof ph, eh.e_phoff + i * sizeof ph) < 0)
			return -1;
		if (ph.p_type == PT_LOAD && (ph.p_flags & PF_W)) {
			*off = ph.p_offset;
			*size = ph.p_filesz < SEARCH_MAX ? ph.p_filesz : SEARCH_MAX;
			return 0;
		}
	}
	return -1;
}

static int read_uvarint(const uint8_t **p, const uint8_t *end, uint64_t *out)
{
	uint64_t v = 0;
	for (int shift = 0; shift < 64 && *p < end; shift += 7) {
		uint8_t c = *(*p)++;
		v |= (uint64_t)(c & 0x7f) << shift;
		if (!(c & 0x80)) {
			*out = v;
			return 0;
		}
	}
	return -1;
}

/* The main package's path in the build info at data[0..len): looked for at 16-byte alignment. */
static int buildinfo_says_ge2(const uint8_t *data, size_t len)
{
	for (size_t at = 0; at + 32 <= len; at += 16) {
		if (memcmp(data + at, MAGIC, MAGIC_LEN) != 0)
			continue;
		if (!(data[at + 15] & 2))
			return 0; /* Go < 1.18 layout (pointers into the data): never a containerd 2.x build */
		const uint8_t *p = data + at + 32, *end = data + len;
		uint64_t n;
		if (read_uvarint(&p, end, &n) < 0 || n > (uint64_t)(end - p))
			return 0;
		p += n; /* the Go version */
		if (read_uvarint(&p, end, &n) < 0)
			return 0;
		if (n > (uint64_t)(end - p))
			n = (uint64_t)(end - p); /* only the first line matters */
		const uint8_t *mod = p, *mend = p + n;
		if (mend - mod >= 21 && memcmp(mod, "path\t", 5) != 0)
			mod += 16; /* the sentinel the module info starts with */
		if (mend - mod < 5 || memcmp(mod, "path\t", 5) != 0)
			return 0;
		mod += 5;
		const uint8_t *nl = memchr(mod, '\n', (size_t)(mend - mod));
		return gobuild_main_is_containerd_ge2((const char *)mod, (size_t)((nl ? nl : mend) - mod));
	}
	return 0;
}

/* /proc/<parent>/exe when the parent runs path (maybe deleted since), else path itself. */
static const char *image_of(const char *path, char *proc, size_t size)
{
	char link[PATH_MAX];
	if (fmt_path(proc, size, "/proc/%d/exe", (int)getppid()) < 0)
		return path;
	ssize_t n = readlink(proc, link, sizeof link - 1);
	if (n < 0)
		return path;
	link[n] = '\0';
	size_t plen = strlen(path);
	if (strncmp(link, path, plen) == 0 && (link[plen] == '\0' || strcmp(link + plen, " (deleted)") == 0))
		return proc;
	return path;
}

int containerd_major_ge2(const char *path)
{
	if (!path || path[0] != '/')
		return 0;
	char proc[64];
	int fd = open(image_of(path, proc, sizeof proc), O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	uint64_t off = 0, size = 0;
	int yes = 0;
	if (find_buildinfo(fd, &off, &size) == 0) {
		/* The main package's line comes right after the header and the Go version. */
		size_t want = size < SEARCH_MAX ? (size_t)size : SEARCH_MAX;
		uint8_t *data = xrealloc(NULL, want ? want : 1);
		ssize_t got = pread(fd, data, want, (off_t)off);
		if (got > 0)
			yes = buildinfo_says_ge2(data, (size_t)got);
		free(data);
	}
	close(fd);
	return yes;
}
