package browsertest

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"testing"
)

// rgb is a colour.
type rgb [3]float64

// writeY4M writes a solid-colour 640x360, 15 fps clip for Chromium's fake camera. A
// small block moves in the top-left corner so that every frame differs (the encoder
// keeps producing frames); tests sample the picture away from it.
func writeY4M(t testing.TB, path string, c rgb) {
	t.Helper()
	writeY4MClip(t, path, 640, 360, 15, 15, func(int) rgb { return c })
}

// writeY4MClip writes frames of w×h at fps, frame n in colourAt(n), with the
// moving block of writeY4M.
func writeY4MClip(t testing.TB, path string, w, h, fps, frames int, colourAt func(n int) rgb) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	bw := bufio.NewWriterSize(f, 1<<20)
	fmt.Fprintf(bw, "YUV4MPEG2 W%d H%d F%d:1 Ip A1:1 C420jpeg\n", w, h, fps)
	yp, up, vp := make([]byte, w*h), make([]byte, w*h/4), make([]byte, w*h/4)
	for n := 0; n < frames; n++ {
		// Full-range BT.601, as C420jpeg says.
		c := colourAt(n)
		r, g, b := c[0], c[1], c[2]
		y := clamp(0.299*r + 0.587*g + 0.114*b)
		u := clamp(128 - 0.168736*r - 0.331264*g + 0.5*b)
		v := clamp(128 + 0.5*r - 0.418688*g - 0.081312*b)
		for i := range yp {
			yp[i] = y
		}
		for i := range up {
			up[i], vp[i] = u, v
		}
		bx := (n * 8) % 96
		for row := 8; row < 24; row++ {
			for col := bx; col < bx+16; col++ {
				yp[row*w+col] = 255 - y
			}
		}
		bw.WriteString("FRAME\n")
		bw.Write(yp)
		bw.Write(up)
		bw.Write(vp)
	}
	if err := bw.Flush(); err != nil {
		t.Fatal(err)
	}
}

func clamp(x float64) byte {
	return byte(math.Max(0, math.Min(255, math.Round(x))))
}

// nearest names the palette colour closest to c and its distance.
func nearest(c []float64, palette map[string]rgb) (string, float64) {
	best, bd := "", math.Inf(1)
	for name, p := range palette {
		d := math.Sqrt((c[0]-p[0])*(c[0]-p[0]) + (c[1]-p[1])*(c[1]-p[1]) + (c[2]-p[2])*(c[2]-p[2]))
		if d < bd {
			best, bd = name, d
		}
	}
	return best, bd
}
