package decoder

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// A recording is the raw ring-buffer records of a session, each as a
// little-endian uint32 length and the record's bytes, so a session can be
// replayed through the decoder offline: test fixtures captured on a real
// kernel, fuzz seeds, bug reports.

// maxRecord bounds one record: the largest real one is a few hundred bytes.
const maxRecord = 1 << 16

// WriteRecording appends one raw record to w.
func WriteRecording(w io.Writer, raw []byte) error {
	var n [4]byte
	binary.LittleEndian.PutUint32(n[:], uint32(len(raw)))
	if _, err := w.Write(n[:]); err != nil {
		return err
	}
	_, err := w.Write(raw)
	return err
}

// ReadRecording hands each record of a recording to fn, in order.
func ReadRecording(r io.Reader, fn func(raw []byte) error) error {
	var n [4]byte
	buf := make([]byte, 0, 512)
	for i := 0; ; i++ {
		if _, err := io.ReadFull(r, n[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("recording record %d: truncated length", i)
		}
		size := binary.LittleEndian.Uint32(n[:])
		if size > maxRecord {
			return fmt.Errorf("recording record %d: %d bytes is not a record", i, size)
		}
		if int(size) > cap(buf) {
			buf = make([]byte, size)
		}
		buf = buf[:size]
		if _, err := io.ReadFull(r, buf); err != nil {
			return fmt.Errorf("recording record %d: truncated after %d-byte length", i, size)
		}
		if err := fn(buf); err != nil {
			return err
		}
	}
}
