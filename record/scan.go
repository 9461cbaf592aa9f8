package record

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"os"
)

// Element IDs this package reads.
const (
	idEBML        = 0x1A45DFA3
	idSegment     = 0x18538067
	idSeekHead    = 0x114D9B74
	idInfo        = 0x1549A966
	idTracks      = 0x1654AE6B
	idCues        = 0x1C53BB6B
	idCuePoint    = 0xBB
	idCluster     = 0x1F43B675
	idTimecode    = 0xE7
	idSimpleBlock = 0xA3
	idBlockGroup  = 0xA0
	idTimecodeSc  = 0x2AD7B1
	idDateUTC     = 0x4461
	idDuration    = 0x4489
	idTags        = 0x1254C367
	idChapters    = 0x1043A770
	idAttachments = 0x1941A469
)

const sizeUnknown = -1

var errTruncated = errors.New("record: truncated element")

// scanner reads EBML elements from a file that may end in the middle of one.
type scanner struct {
	r   *bufio.Reader
	pos int64
	end int64 // file size
}

func (s *scanner) readVint(keepMarker bool) (uint64, int, error) {
	b0, err := s.r.ReadByte()
	if err != nil {
		return 0, 0, err
	}
	if b0 == 0 {
		return 0, 0, errors.New("record: invalid EBML number")
	}
	l := 1
	for m := byte(0x80); b0&m == 0; m >>= 1 {
		l++
	}
	v := uint64(b0)
	if !keepMarker {
		v &= 0xFF >> l
	}
	allOnes := v == uint64(0xFF>>l)
	for i := 1; i < l; i++ {
		c, err := s.r.ReadByte()
		if err != nil {
			return 0, 0, err
		}
		v = v<<8 | uint64(c)
		allOnes = allOnes && c == 0xFF
	}
	s.pos += int64(l)
	if !keepMarker && allOnes {
		return math.MaxUint64, l, nil
	}
	return v, l, nil
}

// next reads an element header; size is sizeUnknown for unknown-size elements.
func (s *scanner) next() (id uint32, size int64, err error) {
	v, _, err := s.readVint(true)
	if err != nil {
		return 0, 0, err
	}
	n, _, err := s.readVint(false)
	if err != nil {
		return 0, 0, err
	}
	if n == math.MaxUint64 {
		return uint32(v), sizeUnknown, nil
	}
	if n > uint64(s.end-s.pos) {
		return uint32(v), int64(n), errTruncated
	}
	return uint32(v), int64(n), nil
}

// peekID returns the next element's ID without consuming it.
func (s *scanner) peekID() (uint32, bool) {
	b, err := s.r.Peek(1)
	if err != nil || b[0] == 0 {
		return 0, false
	}
	l := 1
	for m := byte(0x80); b[0]&m == 0 && l < 4; m >>= 1 {
		l++
	}
	b, err = s.r.Peek(l)
	if err != nil {
		return 0, false
	}
	var v uint32
	for _, c := range b {
		v = v<<8 | uint32(c)
	}
	return v, true
}

func (s *scanner) skip(n int64) error {
	d, err := s.r.Discard(int(n))
	s.pos += int64(d)
	return err
}

func (s *scanner) read(n int64) ([]byte, error) {
	b := make([]byte, n)
	d, err := io.ReadFull(s.r, b)
	s.pos += int64(d)
	return b, err
}

// block is one SimpleBlock, with its time in the file's timecode units.
type block struct {
	track uint64
	t     int64
	key   bool
	data  []byte
}

// layout is what walk learned about a file.
type layout struct {
	timecodeScale   uint64
	date            int64 // DateUTC: ns since 2001-01-01; 0 if absent
	hasDate         bool
	duration        float64 // in timecode units; 0 if absent
	tracks          []byte  // the whole Tracks element
	cues            bool
	cuePoints       int
	clusters        int // clusters started
	wholeClusters   int // clusters whose every byte is present
	blocks          int
	first, last     int64 // block times, timecode units; first = -1 if none
	segmentKnown    bool
	complete        bool // the file ends where its last element ends
	lastWholeOffset int64
}

func isTopLevel(id uint32) bool {
	switch id {
	case idCluster, idCues, idTags, idChapters, idAttachments, idSeekHead, idInfo, idTracks:
		return true
	}
	return false
}

// walk reads a WebM file up to its end or to the first element that is cut
// short, calling fn (if not nil) for each whole SimpleBlock in file order,
// with what is known of the file so far (the header precedes the clusters).
func walk(path string, fn func(*layout, block) error) (*layout, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	s := &scanner{r: bufio.NewReaderSize(f, 1<<20), end: st.Size()}
	lay := &layout{timecodeScale: 1000000, first: -1}

	id, size, err := s.next()
	if err != nil || id != idEBML {
		return nil, errors.New("record: not an EBML file")
	}
	if err := s.skip(size); err != nil {
		return nil, err
	}
	id, size, err = s.next()
	if err != nil && err != errTruncated || id != idSegment {
		return nil, errors.New("record: no Segment")
	}
	lay.segmentKnown = size != sizeUnknown
	segEnd := s.end
	if lay.segmentKnown && s.pos+size < segEnd {
		segEnd = s.pos + size
	}
	lay.lastWholeOffset = s.pos
	for s.pos < segEnd {
		id, size, err := s.next()
		if err == errTruncated && id == idCluster {
			size, err = sizeUnknown, nil // a sized cluster cut short: read what is whole
		}
		if err != nil {
			return lay, nil // cut short: keep what was whole
		}
		switch {
		case id == idCluster:
			whole, err := walkCluster(s, size, lay, fn)
			if err != nil {
				return lay, err
			}
			if !whole {
				return lay, nil
			}
		case size == sizeUnknown:
			return lay, nil
		case id == idInfo:
			b, err := s.read(size)
			if err != nil {
				return lay, nil
			}
			parseInfo(b, lay)
		case id == idTracks:
			b, err := s.read(size)
			if err != nil {
				return lay, nil
			}
			lay.tracks = append(elementHeader(idTracks, size), b...)
		case id == idCues:
			b, err := s.read(size)
			if err != nil {
				return lay, nil
			}
			lay.cues = true
			forEachChild(b, func(id uint32, _ []byte) {
				if id == idCuePoint {
					lay.cuePoints++
				}
			})
		default:
			if err := s.skip(size); err != nil {
				return lay, nil
			}
		}
		lay.lastWholeOffset = s.pos
	}
	lay.complete = s.pos == s.end
	return lay, nil
}

// walkCluster reads one cluster's children. It reports whether the cluster was
// whole; blocks are passed on as they are read, so a cut cluster still gives
// its whole blocks.
func walkCluster(s *scanner, size int64, lay *layout, fn func(*layout, block) error) (bool, error) {
	lay.clusters++
	end := int64(-1)
	if size != sizeUnknown {
		end = s.pos + size
	}
	var tc int64
	for {
		if end >= 0 && s.pos >= end {
			break
		}
		if end < 0 {
			id, ok := s.peekID()
			if !ok {
				return s.pos == s.end, nil
			}
			if isTopLevel(id) {
				break
			}
		}
		id, n, err := s.next()
		if err != nil || n == sizeUnknown {
			return false, nil
		}
		switch id {
		case idTimecode:
			b, err := s.read(n)
			if err != nil {
				return false, nil
			}
			tc = int64(beUint(b))
		case idSimpleBlock:
			b, err := s.read(n)
			if err != nil {
				return false, nil
			}
			blk, ok := parseSimpleBlock(b, tc)
			if !ok {
				continue
			}
			lay.blocks++
			if lay.first < 0 || blk.t < lay.first {
				lay.first = blk.t
			}
			if blk.t > lay.last {
				lay.last = blk.t
			}
			if fn != nil {
				if err := fn(lay, blk); err != nil {
					return false, err
				}
			}
		default:
			if err := s.skip(n); err != nil {
				return false, nil
			}
		}
		lay.lastWholeOffset = s.pos
	}
	lay.wholeClusters++
	return true, nil
}

func parseSimpleBlock(b []byte, clusterTC int64) (block, bool) {
	track, l := vint(b)
	if l == 0 || len(b) < l+3 {
		return block{}, false
	}
	flags := b[l+2]
	if flags&0x06 != 0 { // laced: this package never writes lacing
		return block{}, false
	}
	rel := int16(binary.BigEndian.Uint16(b[l:]))
	return block{track: track, t: clusterTC + int64(rel), key: flags&0x80 != 0, data: b[l+3:]}, true
}

func parseInfo(b []byte, lay *layout) {
	forEachChild(b, func(id uint32, v []byte) {
		switch id {
		case idTimecodeSc:
			lay.timecodeScale = beUint(v)
		case idDateUTC:
			if len(v) == 8 {
				lay.date, lay.hasDate = int64(binary.BigEndian.Uint64(v)), true
			}
		case idDuration:
			switch len(v) {
			case 4:
				lay.duration = float64(math.Float32frombits(binary.BigEndian.Uint32(v)))
			case 8:
				lay.duration = math.Float64frombits(binary.BigEndian.Uint64(v))
			}
		}
	})
}

// forEachChild calls fn for each child of a master element held in memory.
func forEachChild(b []byte, fn func(id uint32, v []byte)) {
	for len(b) > 0 {
		if b[0] == 0 {
			return
		}
		l := 1
		for m := byte(0x80); b[0]&m == 0 && l < 4; m >>= 1 {
			l++
		}
		if len(b) < l {
			return
		}
		var id uint32
		for _, c := range b[:l] {
			id = id<<8 | uint32(c)
		}
		n, sl := vint(b[l:])
		if sl == 0 || uint64(len(b)-l-sl) < n {
			return
		}
		fn(id, b[l+sl:l+sl+int(n)])
		b = b[l+sl+int(n):]
	}
}

func beUint(b []byte) uint64 {
	var v uint64
	for _, c := range b {
		v = v<<8 | uint64(c)
	}
	return v
}

func elementHeader(id uint32, size int64) []byte {
	var b []byte
	for sh := 24; sh >= 0; sh -= 8 {
		if c := byte(id >> sh); c != 0 || len(b) > 0 {
			b = append(b, c)
		}
	}
	var sz [8]byte
	binary.BigEndian.PutUint64(sz[:], uint64(size))
	sz[0] = 0x01
	return append(b, sz[:]...)
}
