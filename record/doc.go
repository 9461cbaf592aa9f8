// Package record writes the video record: VP8 and Opus RTP, as the SFU forwards
// it, into seekable WebM files, without decoding or transcoding.
//
// A Recorder takes packets on the caller's goroutine (a copy into a preallocated
// slot and a non-blocking channel send) and does everything else on its own
// goroutine: reordering by sequence number, VP8 frame reassembly, putting audio
// and video on one timeline from RTCP sender reports, and muxing with ebml-go.
//
// Crash safety: each cluster is flushed (and fsynced, by default) when the next
// one starts, its size is patched in, and the Segment's Duration is advanced, so
// a file whose writer died plays up to its last cluster. Repair rebuilds such a
// file with Cues and an exact Duration; Inspect reports what a file holds;
// Verify checks a file against its recorded SHA-256.
//
// Use, from a server-side subscriber of the program or the floor:
//
//	rec, err := record.NewWriter(path,
//		record.WithKeyframeRequest(func() { go sendPLI() }),
//		record.WithGapHandler(func(k record.Kind, first uint16, n int) { go nack(k, first, n) }))
//	// per packet read from the track (the packet is copied):
//	rec.WriteVideoRTP(pkt) // or WriteAudioRTP
//	// per RTCP sender report of either track:
//	rec.SenderReport(record.Video, sr.NTPTime, sr.RTPTime)
//	// at the end:
//	info, err := rec.Close() // info.SHA256, info.Start, info.Duration for the index
package record
