package record

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/at-wat/ebml-go"
	"github.com/at-wat/ebml-go/webm"
)

// ErrMismatch is returned by Verify when a file's hash is not the recorded one.
var ErrMismatch = errors.New("record: SHA-256 does not match")

// matroskaEpoch is DateUTC's origin.
var matroskaEpoch = time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)

// FileInfo is what Inspect finds in a file.
type FileInfo struct {
	Duration      time.Duration // the Segment's Duration; 0 if absent
	MediaDuration time.Duration // from the first to the last whole block
	Start         time.Time     // DateUTC; zero if absent
	Cues          bool
	CuePoints     int
	Clusters      int // clusters started
	WholeClusters int // clusters whose every byte is present
	Blocks        int // whole blocks
	SegmentSized  bool
	Complete      bool // the file ends where its last element ends
}

// NeedsRepair reports whether the file lacks what a finished recording has:
// Cues, a Duration, and no element cut short.
func (fi FileInfo) NeedsRepair() bool {
	return !fi.Cues || fi.Duration <= 0 || !fi.Complete || !fi.SegmentSized
}

// Inspect reads a WebM file's structure without decoding anything.
func Inspect(path string) (FileInfo, error) {
	lay, err := walk(path, nil)
	if err != nil {
		return FileInfo{}, err
	}
	return lay.fileInfo(), nil
}

func (lay *layout) fileInfo() FileInfo {
	unit := time.Duration(lay.timecodeScale)
	fi := FileInfo{
		Duration:      time.Duration(lay.duration * float64(unit)),
		Cues:          lay.cues,
		CuePoints:     lay.cuePoints,
		Clusters:      lay.clusters,
		WholeClusters: lay.wholeClusters,
		Blocks:        lay.blocks,
		SegmentSized:  lay.segmentKnown,
		Complete:      lay.complete,
	}
	if lay.first >= 0 {
		fi.MediaDuration = time.Duration(lay.last-lay.first) * unit
	}
	if lay.hasDate {
		fi.Start = matroskaEpoch.Add(time.Duration(lay.date))
	}
	return fi
}

// Repair rebuilds a file whose writer died: it keeps every whole block (all
// of each whole cluster, and the whole blocks of a cluster cut short), and
// rewrites the file with Cues, Duration and sizes, through a temporary file
// renamed over the original. It works on any file this package wrote.
func Repair(path string) (Info, error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, base+".repair-*")
	if err != nil {
		return Info{}, err
	}
	defer os.Remove(tmp.Name()) // no-op after the rename

	var (
		m     *muxer
		index map[uint64]int
		w, h  int
	)
	lay, err := walk(path, func(lay *layout, b block) error {
		if m == nil {
			tracks, err := parseTracks(lay.tracks)
			if err != nil {
				return err
			}
			index = make(map[uint64]int, len(tracks))
			for i, t := range tracks {
				index[t.TrackNumber] = i
				if t.Video != nil && w == 0 {
					w, h = int(t.Video.PixelWidth), int(t.Video.PixelHeight)
				}
			}
			cfg := muxConfig{tracks: tracks, cuesReserve: defaults().cuesReserve}
			if lay.hasDate {
				cfg.start = matroskaEpoch.Add(time.Duration(lay.date))
			}
			if m, err = newMuxer(tmp, cfg); err != nil {
				return err
			}
		}
		if i, ok := index[b.track]; ok {
			m.write(i, b.key, b.t*int64(lay.timecodeScale)/1e6, b.data)
		}
		return nil
	})
	if err != nil {
		_ = tmp.Close()
		if m != nil {
			_ = m.finish()
		}
		return Info{}, fmt.Errorf("record: repair %s: %w", path, err)
	}
	if m == nil {
		_ = tmp.Close()
		return Info{}, fmt.Errorf("record: repair %s: %w", path, ErrNoMedia)
	}
	if err := m.finish(); err != nil {
		_ = tmp.Close()
		return Info{}, fmt.Errorf("record: repair %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return Info{}, err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return Info{}, err
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // make the rename durable
		_ = d.Close()
	}
	info := Info{Path: path, Duration: time.Duration(m.last-m.first) * time.Millisecond, Width: w, Height: h}
	if lay.hasDate {
		info.Start = matroskaEpoch.Add(time.Duration(lay.date))
		info.End = info.Start.Add(info.Duration)
	}
	if len(m.written) == 2 {
		info.VideoFrames, info.AudioFrames = m.written[0], m.written[1]
	}
	info.SHA256, info.Size, err = FileSHA256(path)
	return info, err
}

// parseTracks decodes a Tracks element with ebml-go.
func parseTracks(b []byte) ([]webm.TrackEntry, error) {
	if len(b) == 0 {
		return nil, errors.New("record: no Tracks")
	}
	var v struct {
		Tracks webm.Tracks `ebml:"Tracks"`
	}
	if err := ebml.Unmarshal(bytes.NewReader(b), &v, ebml.WithIgnoreUnknown(true)); err != nil {
		return nil, fmt.Errorf("record: Tracks: %w", err)
	}
	if len(v.Tracks.TrackEntry) == 0 {
		return nil, errors.New("record: no TrackEntry")
	}
	return v.Tracks.TrackEntry, nil
}

// Verify checks that the file's SHA-256 is sha256hex.
func Verify(path, sha256hex string) error {
	sum, _, err := FileSHA256(path)
	if err != nil {
		return err
	}
	if !strings.EqualFold(sum, strings.TrimSpace(sha256hex)) {
		return fmt.Errorf("%w: %s is %s, recorded %s", ErrMismatch, path, sum, sha256hex)
	}
	return nil
}

// FileSHA256 returns a file's SHA-256 (hex) and size, as the index keeps them.
func FileSHA256(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}
