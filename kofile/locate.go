package kofile

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// ErrNotFound is returned by Locate when modules.dep names no such module.
var ErrNotFound = errors.New("module not in modules.dep")

// maxDepLine bounds one modules.dep line (a path and its dependencies).
const maxDepLine = 1 << 20

// compressedSuffixes are the suffixes kmod accepts after .ko.
var compressedSuffixes = []string{"", ".xz", ".zst", ".gz"}

// NormalizeName makes a module name comparable: the kernel and kmod treat
// '-' and '_' in module names as the same character.
func NormalizeName(name string) string { return strings.ReplaceAll(name, "-", "_") }

// NameFromPath returns the module name a file path implies:
// kernel/net/netfilter/xt_mark.ko.xz -> xt_mark.
func NameFromPath(p string) string {
	base := path.Base(filepath.ToSlash(p))
	for _, suf := range compressedSuffixes {
		if b, ok := strings.CutSuffix(base, ".ko"+suf); ok {
			return NormalizeName(b)
		}
	}
	return ""
}

// Locate finds the file of module name for kernel kver under root ("/" for
// the running system, or an unpacked tree), through
// root/lib/modules/KVER/modules.dep, the way modprobe does.
func Locate(root, kver, name string) (string, error) {
	p, err := LocateFS(os.DirFS(root), kver, name)
	if err != nil {
		if errors.Is(err, ErrNotFound) || !strings.HasPrefix(p, "lib/") {
			return "", err
		}
		return "", fmt.Errorf("modules.dep names %s: %w", filepath.Join(root, filepath.FromSlash(p)), errors.Unwrap(err))
	}
	return filepath.Join(root, filepath.FromSlash(p)), nil
}

// LocateFS is Locate on a file system rooted at the machine's root: it
// returns the module's path in fsys (no leading slash). When modules.dep
// names a file that cannot be read, the path comes back with the error.
func LocateFS(fsys fs.FS, kver, name string) (string, error) {
	if kver == "" || strings.ContainsAny(kver, "/\x00") || kver == "." || kver == ".." {
		return "", fmt.Errorf("bad kernel version %q", kver)
	}
	dir := path.Join("lib", "modules", kver)
	f, err := fsys.Open(path.Join(dir, "modules.dep"))
	if err != nil {
		return "", err
	}
	defer f.Close()
	want := NormalizeName(name)
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), maxDepLine)
	for sc.Scan() {
		p, _, ok := strings.Cut(sc.Text(), ":")
		if !ok || NameFromPath(p) != want {
			continue
		}
		// Old kmod wrote absolute paths; they are relative to root too.
		if path.IsAbs(p) {
			p = path.Clean(strings.TrimPrefix(p, "/"))
		} else {
			p = path.Join(dir, p)
		}
		if _, err := fs.Stat(fsys, p); err != nil {
			return p, fmt.Errorf("modules.dep names /%s: %w", p, err)
		}
		return p, nil
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("/%s: %w", path.Join(dir, "modules.dep"), err)
	}
	return "", fmt.Errorf("%s for %s: %w", name, kver, ErrNotFound)
}
