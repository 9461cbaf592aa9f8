package record

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"time"

	"github.com/at-wat/ebml-go"
	"github.com/at-wat/ebml-go/webm"
)

// Track numbers in every file this package writes.
const (
	videoTrack = 1
	audioTrack = 2
)

// Clusters start at video keyframes, at most one per minClusterMs; a cluster
// is at most maxClusterMs long (a SimpleBlock's 16-bit relative timecode).
const (
	minClusterMs = 500
	maxClusterMs = 0x7FFF
)

var clusterID = [4]byte{0x1F, 0x43, 0xB6, 0x75}

// muxer writes a WebM file: the header (EBML, Segment with SeekHead, Info and
// Tracks, marshalled by ebml-go once), space reserved for the Cues, then
// clusters of SimpleBlocks, which it encodes itself straight into a buffered
// writer: a frame is written when write returns, nothing is allocated per
// frame, and no goroutine is involved.
//
// What a crash needs: clusters are written with an unknown size; at each
// cluster start the previous one is flushed, its size patched in and
// (optionally) fsynced, and Duration is advanced to where the new one starts.
// finish writes the Cues into the reserved space, the exact Duration and the
// Segment's size.
//
// I/O errors are kept (the first one) and reported by finish; writes after an
// error are dropped.
type muxer struct {
	f    *os.File
	bw   *bufio.Writer
	pos  int64
	err  error
	sync bool

	durPos      int64 // offset of Duration's 8-byte float, or -1
	segSizePos  int64 // offset of the Segment's 8-byte size, or -1
	segData     int64 // offset of the Segment's data (cue positions are relative to it)
	cuesPos     int64 // offset of the space reserved for the Cues
	cuesReserve int

	tracks       []uint64 // track number, per track index
	clusterStart int64    // offset of the open cluster, or -1
	clusterT     int64    // its time (ms, file time)
	prevSize     int64    // size of the cluster before the open one, 0 if none
	clusters     int
	cues         []cue

	first   int64 // ms timeline of the first frame, -1 before any; file time 0
	last    int64
	written []uint64 // frames, per track index

	scratch [32]byte
}

// cue is a cluster's start, for the Cues.
type cue struct {
	t     uint64 // ms, file time
	track uint64
	pos   uint64 // cluster offset from the Segment's data
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

// The header as marshalled: the Segment's size is unknown until finish, and
// each SeekPosition is 8 bytes so that filling them in changes no size.
type seekFixed struct {
	SeekID       []byte `ebml:"SeekID"`
	SeekPosition uint64 `ebml:"SeekPosition,size=8"`
}

type muxSegment struct {
	SeekHead struct {
		Seek []seekFixed `ebml:"Seek"`
	} `ebml:"SeekHead"`
	Info   *webm.Info  `ebml:"Info"`
	Tracks webm.Tracks `ebml:"Tracks"`
}

type muxHeader struct {
	EBML    *webm.EBMLHeader `ebml:"EBML"`
	Segment muxSegment       `ebml:"Segment,size=unknown"`
}

// header marshals the file's header; cuesPos etc. are offsets in it.
func header(tracks []webm.TrackEntry, start time.Time) (b []byte, segData int64, err error) {
	info := &webm.Info{
		TimecodeScale: 1000000, // ms
		MuxingApp:     "ebml-go",
		WritingApp:    "opscenter record",
		Duration:      math.SmallestNonzeroFloat64, // a placeholder: the element is written, filled in later
	}
	if !start.IsZero() {
		info.DateUTC = start.UTC()
	}
	h := muxHeader{EBML: webm.DefaultEBMLHeader}
	h.Segment.Info = info
	h.Segment.Tracks.TrackEntry = tracks
	h.Segment.SeekHead.Seek = []seekFixed{
		{SeekID: ebml.ElementInfo.Bytes()},
		{SeekID: ebml.ElementTracks.Bytes()},
		{SeekID: ebml.ElementCues.Bytes()},
	}
	// First pass: where Info and Tracks land (relative to the SeekHead, the
	// first child of the Segment); the Cues go right after the header.
	var seg, infoPos, tracksPos uint64
	hook := func(e *ebml.Element) {
		switch e.Name {
		case "SeekHead":
			seg = e.Position
		case "Info":
			infoPos = e.Position
		case "Tracks":
			tracksPos = e.Position
		}
	}
	var buf bytes.Buffer
	if err := ebml.Marshal(&h, &buf, ebml.WithElementWriteHooks(hook)); err != nil {
		return nil, 0, err
	}
	n := buf.Len()
	h.Segment.SeekHead.Seek[0].SeekPosition = infoPos - seg
	h.Segment.SeekHead.Seek[1].SeekPosition = tracksPos - seg
	h.Segment.SeekHead.Seek[2].SeekPosition = uint64(n) - seg
	buf.Reset()
	if err := ebml.Marshal(&h, &buf); err != nil {
		return nil, 0, err
	}
	if buf.Len() != n {
		return nil, 0, fmt.Errorf("record: header size changed (%d, %d)", n, buf.Len())
	}
	return buf.Bytes(), int64(seg), nil
}

func newMuxer(f *os.File, cfg muxConfig) (*muxer, error) {
	m := &muxer{
		f: f, bw: bufio.NewWriterSize(f, 256<<10), sync: cfg.sync,
		durPos: -1, segSizePos: -1, clusterStart: -1, first: -1,
		cuesReserve: max(cfg.cuesReserve, 9),
	}
	tracks := cfg.tracks
	if tracks == nil {
		tracks = defaultTracks(cfg.width, cfg.height)
	}
	for _, t := range tracks {
		if t.TrackNumber == 0 || t.TrackNumber > 126 {
			return nil, fmt.Errorf("record: track number %d", t.TrackNumber)
		}
		m.tracks = append(m.tracks, t.TrackNumber)
	}
	m.written = make([]uint64, len(tracks))
	h, segData, err := header(tracks, cfg.start)
	if err != nil {
		return nil, err
	}
	m.segData = segData
	m.locateHeader(h)
	m.put(h)
	m.cuesPos = m.pos
	m.put(voidElement(m.cuesReserve))
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
func (m *muxer) locateHeader(h []byte) {
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

// put appends b to the file.
func (m *muxer) put(b []byte) {
	if m.err != nil {
		return
	}
	if _, err := m.bw.Write(b); err != nil {
		m.setErr(err)
	}
	m.pos += int64(len(b))
}

// write appends one frame of the i-th track; frames must come in timeline
// order. data is written before write returns.
func (m *muxer) write(i int, key bool, ms int64, data []byte) {
	if m.first < 0 {
		m.first = ms
	}
	m.last = ms
	m.written[i]++
	track := m.tracks[i]
	t := ms - m.first
	rel := t - m.clusterT
	if m.clusterStart < 0 || rel >= maxClusterMs || (track == videoTrack && key && rel >= minClusterMs) {
		m.startCluster(t, track)
		rel = 0
	}
	if rel <= -maxClusterMs {
		return // out of order beyond a block's reach (the recorder never does this)
	}
	// SimpleBlock: ID, size, track number (1-byte vint), 16-bit relative
	// timecode, flags.
	b := m.scratch[:0]
	b = append(b, 0xA3)
	b = appendSize(b, uint64(4+len(data)))
	b = append(b, 0x80|byte(track), byte(uint16(int16(rel))>>8), byte(uint16(int16(rel))))
	if key {
		b = append(b, 0x80)
	} else {
		b = append(b, 0)
	}
	m.put(b)
	m.put(data)
}

// startCluster closes the open cluster (flush, size, fsync), advances
// Duration to t, and opens a cluster of unknown size at t.
func (m *muxer) startCluster(t int64, track uint64) {
	if m.clusterStart >= 0 {
		m.closeCluster()
		m.prevSize = m.pos - m.clusterStart
	} else if err := m.bw.Flush(); err != nil {
		m.setErr(err)
	}
	if m.sync && m.err == nil {
		m.setErr(m.f.Sync())
	}
	if m.clusterStart >= 0 {
		m.writeDuration(float64(t)) // everything before this cluster is whole (and synced)
	}
	m.clusterStart, m.clusterT = m.pos, t
	m.clusters++
	m.cues = append(m.cues, cue{t: uint64(t), track: track, pos: uint64(m.pos - m.segData)})
	b := append(m.scratch[:0], clusterID[:]...)
	b = append(b, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF) // unknown size
	b = append(b, 0xE7)                                           // Timecode
	b = appendUint(b, uint64(t))
	if m.prevSize > 0 {
		b = append(b, 0xAB) // PrevSize
		b = appendUint(b, uint64(m.prevSize))
	}
	m.put(b)
}

// closeCluster flushes the open cluster and patches its size in.
func (m *muxer) closeCluster() {
	if m.err != nil {
		return
	}
	if err := m.bw.Flush(); err != nil {
		m.setErr(err)
		return
	}
	m.patchSize(m.clusterStart+4, m.pos-(m.clusterStart+12))
}

func (m *muxer) writeDuration(ms float64) {
	if m.durPos < 0 {
		return
	}
	var buf [8]byte
	binary.BigEndian.PutUint64(buf[:], math.Float64bits(ms))
	m.writeAt(buf[:], m.durPos)
}

// patchSize overwrites an 8-byte unknown size with n.
func (m *muxer) patchSize(off, n int64) {
	var buf [8]byte
	binary.BigEndian.PutUint64(buf[:], uint64(n))
	buf[0] = 0x01
	m.writeAt(buf[:], off)
}

// writeAt overwrites what was written at off (flushing first).
func (m *muxer) writeAt(b []byte, off int64) {
	if m.err != nil {
		return
	}
	if err := m.bw.Flush(); err != nil {
		m.setErr(err)
		return
	}
	if _, err := m.f.WriteAt(b, off); err != nil {
		m.setErr(err)
	}
}

// finish closes the last cluster, writes the Cues (thinned to fit the
// reserved space), the Duration and the Segment's size, and syncs. It does
// not close the file.
func (m *muxer) finish() error {
	if m.clusterStart >= 0 {
		m.closeCluster()
	}
	if err := m.bw.Flush(); err != nil {
		m.setErr(err)
	}
	m.writeCues()
	if m.first >= 0 {
		m.writeDuration(float64(m.last - m.first))
	}
	if m.segSizePos >= 0 {
		m.patchSize(m.segSizePos, m.pos-(m.segSizePos+8))
	}
	if m.err == nil {
		m.setErr(m.f.Sync())
	}
	return m.err
}

// writeCues writes the Cues into the reserved space, every other cue point
// dropped until they fit, and a Void after them.
func (m *muxer) writeCues() {
	if m.err != nil || len(m.cues) == 0 {
		return
	}
	pts := make([]webm.CuePoint, len(m.cues))
	for i, c := range m.cues {
		pts[i] = webm.CuePoint{CueTime: c.t, CueTrackPositions: []webm.CueTrackPosition{{CueTrack: c.track, CueClusterPosition: c.pos}}}
	}
	var buf bytes.Buffer
	for {
		buf.Reset()
		if err := ebml.Marshal(&struct {
			Cues webm.Cues `ebml:"Cues"`
		}{webm.Cues{CuePoint: pts}}, &buf); err != nil {
			m.setErr(err)
			return
		}
		rest := m.cuesReserve - buf.Len()
		if rest == 0 || rest >= 9 {
			if rest > 0 {
				buf.Write(voidElement(rest))
			}
			m.writeAt(buf.Bytes(), m.cuesPos)
			return
		}
		if len(pts) == 1 {
			return // no room for even one: the Void stays
		}
		thin := pts[:0]
		for i := 0; i < len(pts); i += 2 {
			thin = append(thin, pts[i])
		}
		pts = thin
	}
}

// voidElement is an EBML Void element of exactly n (≥ 9) bytes.
func voidElement(n int) []byte {
	b := make([]byte, n)
	b[0] = 0xEC
	binary.BigEndian.PutUint64(b[1:9], uint64(n-9))
	b[1] = 0x01
	return b
}

// appendSize appends an EBML data size in as few bytes as it takes (all
// ones is reserved for "unknown").
func appendSize(b []byte, v uint64) []byte {
	l := 1
	for l < 8 && v >= 1<<(7*l)-1 {
		l++
	}
	v |= 1 << (7 * l) // the length marker
	for i := l - 1; i >= 0; i-- {
		b = append(b, byte(v>>(8*i)))
	}
	return b
}

// appendUint appends an EBML unsigned integer element's size and value.
func appendUint(b []byte, v uint64) []byte {
	l := 1
	for l < 8 && v >= 1<<(8*l) {
		l++
	}
	b = append(b, 0x80|byte(l))
	for i := l - 1; i >= 0; i-- {
		b = append(b, byte(v>>(8*i)))
	}
	return b
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
