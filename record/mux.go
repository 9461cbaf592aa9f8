package record

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"math"
	"os"
	"time"

	"github.com/at-wat/ebml-go/mkvcore"
	"github.com/at-wat/ebml-go/webm"
)

// Track numbers in every file this package writes.
const (
	videoTrack = 1
	audioTrack = 2
)

var clusterID = [4]byte{0x1F, 0x43, 0xB6, 0x75}

// muxer is the file under ebml-go's block writer. ebml-go writes unknown-size
// clusters and only fills in Cues and Duration when it is closed; muxer adds
// what a crash needs: at each cluster start it flushes and (optionally)
// fsyncs the previous cluster, patches its size in, and advances Duration.
//
// I/O errors are kept, not returned: ebml-go's writer goroutine stops reading
// frames after an error and would block its callers for good.
type muxer struct {
	f    *os.File
	bw   *bufio.Writer
	pos  int64
	err  error
	sync bool

	head       []byte // the start of the file, to find Duration and the Segment size
	durPos     int64  // offset of Duration's 8-byte float, or -1
	segSizePos int64  // offset of the Segment's 8-byte size, or -1

	clusterStart int64 // offset of the open cluster, or -1
	tcStep       int   // position in the open cluster's header writes
	clusters     int

	ws      []webm.BlockWriteCloser
	first   int64 // ms timeline of the first frame, -1 before any
	last    int64
	written []uint64 // frames, per track index
}

type muxConfig struct {
	width, height int
	cuesReserve   int
	sync          bool
	start         time.Time
	tracks        []webm.TrackEntry // nil: the recorder's VP8 + Opus pair
}

func defaultTracks(width, height int) []webm.TrackEntry {
	return []webm.TrackEntry{
		{
			Name: "video", TrackNumber: videoTrack, TrackUID: videoTrack,
			CodecID: "V_VP8", TrackType: 1,
			Video: &webm.Video{PixelWidth: uint64(width), PixelHeight: uint64(height)},
		},
		{
			Name: "audio", TrackNumber: audioTrack, TrackUID: audioTrack,
			CodecID: "A_OPUS", TrackType: 2,
			// OpusHead (RFC 7845 5.1): version 1, 2 channels, no pre-skip, 48 kHz,
			// no gain, channel mapping family 0.
			CodecPrivate: []byte{'O', 'p', 'u', 's', 'H', 'e', 'a', 'd', 1, 2, 0, 0, 0x80, 0xBB, 0, 0, 0, 0, 0},
			Audio:        &webm.Audio{SamplingFrequency: 48000, Channels: 2},
			SeekPreRoll:  80000000, // 80 ms, as WebM asks for Opus
		},
	}
}

func newMuxer(f *os.File, cfg muxConfig) (*muxer, error) {
	m := &muxer{
		f: f, bw: bufio.NewWriterSize(f, 256<<10), sync: cfg.sync,
		durPos: -1, segSizePos: -1, clusterStart: -1, first: -1,
		head: make([]byte, 0, 4096),
	}
	tracks := cfg.tracks
	if tracks == nil {
		tracks = defaultTracks(cfg.width, cfg.height)
	}
	// A fresh Info per file: ebml-go sets the Duration placeholder on the Info
	// it is given, and webm.DefaultSegmentInfo is shared.
	info := &webm.Info{
		TimecodeScale: 1000000, // ms
		MuxingApp:     "ebml-go",
		WritingApp:    "opscenter record",
	}
	if !cfg.start.IsZero() {
		info.DateUTC = cfg.start.UTC()
	}
	ws, err := webm.NewSimpleBlockWriter(m, tracks,
		mkvcore.WithSegmentInfo(info),
		mkvcore.WithSeekHead(true),
		mkvcore.WithCues(cfg.cuesReserve),
		// Clusters start at video keyframes (at most one per 500 ms); 32767 ms is
		// the longest a cluster can be.
		mkvcore.WithMinMaxClusterDuration(videoTrack, 500, 0x7FFF),
		// Frames arrive sorted (the recorder merges its tracks; Repair reads
		// them in file order), so no sorter that could drop a video frame.
		mkvcore.WithBlockInterceptor(nil),
		mkvcore.WithOnFatalHandler(m.setErr),
		mkvcore.WithOnErrorHandler(m.setErr),
	)
	if err != nil {
		return nil, err
	}
	m.ws = ws
	m.written = make([]uint64, len(ws))
	m.locateHeader()
	if err := m.bw.Flush(); err != nil {
		m.setErr(err)
	}
	return m, m.err
}

func (m *muxer) setErr(err error) {
	if m.err == nil && err != nil {
		m.err = err
	}
}

// locateHeader finds the Duration float and the Segment size in the header.
func (m *muxer) locateHeader() {
	h := m.head
	if i := bytes.Index(h, []byte{0x44, 0x89, 0x88}); i >= 0 {
		m.durPos = int64(i) + 3
	}
	// EBML header: 4-byte ID, its size, its body; then the Segment's 4-byte ID.
	if len(h) > 5 {
		if n, l := vint(h[4:]); l > 0 {
			p := 4 + l + int(n) + 4
			if p+8 <= len(h) && bytes.Equal(h[p:p+8], []byte{1, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}) {
				m.segSizePos = int64(p)
			}
		}
	}
}

// Write is ebml-go's output. It always claims success; see muxer.
func (m *muxer) Write(b []byte) (int, error) {
	if m.err != nil {
		return len(b), nil
	}
	// ebml-go writes an element ID in a Write of its own; a 4-byte write equal
	// to the Cluster ID is the start of a cluster (block writes are longer).
	if len(b) == 4 && [4]byte(b) == clusterID {
		m.clusterBoundary()
		m.tcStep = 1
	} else if m.tcStep > 0 {
		m.clusterTimecode(b)
	}
	if len(m.head) < cap(m.head) {
		m.head = append(m.head, b[:min(len(b), cap(m.head)-len(m.head))]...)
	}
	if _, err := m.bw.Write(b); err != nil {
		m.setErr(err)
	}
	m.pos += int64(len(b))
	return len(b), nil
}

// clusterTimecode follows the writes after a Cluster ID: the unknown size,
// then Timecode's ID, size and value. The value is where the new cluster
// starts, so everything before it is whole: that becomes the Duration.
func (m *muxer) clusterTimecode(b []byte) {
	switch m.tcStep {
	case 1, 3:
		m.tcStep++
	case 2:
		if len(b) == 1 && b[0] == 0xE7 {
			m.tcStep = 3
		} else {
			m.tcStep = 0
		}
	case 4:
		m.tcStep = 0
		var tc uint64
		for _, c := range b {
			tc = tc<<8 | uint64(c)
		}
		m.writeDuration(float64(tc))
	}
}

func (m *muxer) writeDuration(ms float64) {
	if m.durPos < 0 {
		return
	}
	var buf [8]byte
	binary.BigEndian.PutUint64(buf[:], math.Float64bits(ms))
	_, _ = m.WriteAt(buf[:], m.durPos)
}

// clusterBoundary closes the open cluster: flush, give it a size, fsync.
func (m *muxer) clusterBoundary() {
	if err := m.bw.Flush(); err != nil {
		m.setErr(err)
		return
	}
	if m.clusterStart >= 0 {
		m.patchSize(m.clusterStart+4, m.pos-(m.clusterStart+12))
	}
	m.clusterStart = m.pos
	m.clusters++
	if m.sync && m.err == nil {
		m.setErr(m.f.Sync())
	}
}

// patchSize overwrites an 8-byte unknown size with n.
func (m *muxer) patchSize(off, n int64) {
	var buf [8]byte
	binary.BigEndian.PutUint64(buf[:], uint64(n))
	buf[0] = 0x01
	_, _ = m.WriteAt(buf[:], off)
}

// WriteAt lets ebml-go fill in Cues and Duration at the end.
func (m *muxer) WriteAt(b []byte, off int64) (int, error) {
	if m.err != nil {
		return len(b), nil
	}
	if err := m.bw.Flush(); err != nil {
		m.setErr(err)
		return len(b), nil
	}
	if _, err := m.f.WriteAt(b, off); err != nil {
		m.setErr(err)
	}
	return len(b), nil
}

// Close is called by ebml-go once it has written everything.
func (m *muxer) Close() error {
	if err := m.bw.Flush(); err != nil {
		m.setErr(err)
	}
	return nil
}

// write hands one frame of the i-th track to ebml-go; frames must come in
// timeline order. ebml-go keeps data until it has written it, so data must
// not be reused.
func (m *muxer) write(i int, key bool, ms int64, data []byte) {
	if m.first < 0 {
		m.first = ms
	}
	m.last = ms
	m.written[i]++
	_, _ = m.ws[i].Write(key, ms, data)
}

// finish closes ebml-go's writers (which writes Cues and Duration), gives the
// Segment its size and syncs. It does not close the file.
func (m *muxer) finish() error {
	for _, w := range m.ws {
		_ = w.Close()
	}
	if m.clusterStart >= 0 && m.err == nil { // ebml-go ends with an empty cluster
		m.patchSize(m.clusterStart+4, m.pos-(m.clusterStart+12))
	}
	if m.segSizePos >= 0 && m.err == nil {
		m.patchSize(m.segSizePos, m.pos-(m.segSizePos+8))
	}
	if m.err == nil {
		m.setErr(m.f.Sync())
	}
	return m.err
}

// vint decodes an EBML variable-size integer (marker removed).
func vint(b []byte) (uint64, int) {
	if len(b) == 0 || b[0] == 0 {
		return 0, 0
	}
	l := 1
	for mask := byte(0x80); b[0]&mask == 0; mask >>= 1 {
		l++
	}
	if len(b) < l {
		return 0, 0
	}
	v := uint64(b[0] & (0xFF >> l))
	for i := 1; i < l; i++ {
		v = v<<8 | uint64(b[i])
	}
	return v, l
}
