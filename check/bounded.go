package check

import (
	"fmt"
	"io"
	"io/fs"
)

// Size caps for what check reads from disk. A pstore record is at most
// the backend's record size (ramoops: tens of KiB; EFI: 1 KiB); the boot
// history keeps 100 boots, about 15 KiB.
const (
	maxPstoreRecord = 4 << 20
	maxHistoryFile  = 1 << 20
)

// readRegular reads a regular file of at most max bytes. Anything else (a
// symlink to /dev/zero, a FIFO that would block, a directory, a symlink
// loop) is an error naming what it is, found with Lstat before the file
// is opened, and a file that grew past max is not read past it.
func readRegular(fsys fs.FS, name string, max int64) ([]byte, error) {
	info, err := fs.Lstat(fsys, name)
	if err != nil {
		return nil, err
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("not a regular file (%s)", fileKind(info.Mode()))
	}
	if info.Size() > max {
		return nil, fmt.Errorf("%d bytes, more than the %d MiB read", info.Size(), max>>20)
	}
	f, err := fsys.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		return nil, fmt.Errorf("not a regular file once opened")
	}
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("more than the %d MiB read", max>>20)
	}
	return b, nil
}

func fileKind(m fs.FileMode) string {
	switch {
	case m&fs.ModeSymlink != 0:
		return "a symbolic link"
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0:
		return "a device"
	}
	return m.Type().String()
}
