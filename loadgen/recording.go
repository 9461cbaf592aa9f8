package loadgen

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/opscenter/opscenter/record"
)

// RecordingFigures describe the files the server recorded during a run (the
// program and the floor, recording.dir), read after the server stopped and
// closed them.
type RecordingFigures struct {
	Files          int     `json:"files"`
	Bytes          int64   `json:"bytes"`
	ProgramFiles   int     `json:"program_files"`
	ProgramBytes   int64   `json:"program_bytes"`
	ProgramSeconds float64 `json:"program_media_seconds"` // first to last block, summed over the program's files
	FloorFiles     int     `json:"floor_files"`
	FloorBytes     int64   `json:"floor_bytes"`
	// ProgramMBPerMin is ProgramBytes per minute of ProgramSeconds (10^6 bytes).
	ProgramMBPerMin float64 `json:"program_mb_per_min"`
}

// scanRecordings walks a recording directory: file names are
// SESSION/TIME-KIND-CODE-ID.webm (package recording).
func scanRecordings(dir string) (RecordingFigures, error) {
	var f RecordingFigures
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) && path == dir {
				return filepath.SkipDir // nothing recorded
			}
			return err
		}
		if d.IsDir() || !strings.HasSuffix(path, ".webm") {
			return nil
		}
		st, err := d.Info()
		if err != nil {
			return fmt.Errorf("recording %s: %w", path, err)
		}
		f.Files++
		f.Bytes += st.Size()
		switch base := filepath.Base(path); {
		case strings.Contains(base, "-program-"):
			fi, err := record.Inspect(path)
			if err != nil {
				return fmt.Errorf("inspect %s: %w", path, err)
			}
			f.ProgramFiles++
			f.ProgramBytes += st.Size()
			f.ProgramSeconds += fi.MediaDuration.Seconds()
		case strings.Contains(base, "-floor-"):
			f.FloorFiles++
			f.FloorBytes += st.Size()
		}
		return nil
	})
	if f.ProgramSeconds > 0 {
		f.ProgramMBPerMin = float64(f.ProgramBytes) / 1e6 / (f.ProgramSeconds / 60)
	}
	return f, err
}
