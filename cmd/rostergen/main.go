// Command rostergen turns the official GSO unit list (shared/data/*.tsv) into the
// roster file that opscenter embeds: one row per endpoint, command room first.
//
//	go run ./cmd/rostergen -in ../shared/data/quang-ninh-2021-units.tsv \
//	    -province-name "Tỉnh Quảng Ninh" -out configs/roster/22-2021-05-23.tsv
package main

import (
	"encoding/csv"
	"flag"
	"fmt"
	"io"
	"os"
)

func main() {
	in := flag.String("in", "", "GSO unit list (TSV with province_code, district_code, ... columns)")
	out := flag.String("out", "", "roster file to write")
	provName := flag.String("province-name", "", "name of the province (the command room)")
	flag.Parse()
	if err := run(*in, *out, *provName); err != nil {
		fmt.Fprintln(os.Stderr, "rostergen:", err)
		os.Exit(1)
	}
}

func run(in, out, provName string) error {
	f, err := os.Open(in)
	if err != nil {
		return fmt.Errorf("open input: %w", err)
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.Comma = '\t'
	r.FieldsPerRecord = 7
	header, err := r.Read()
	if err != nil {
		return fmt.Errorf("read header: %w", err)
	}
	if header[0] != "province_code" || header[4] != "commune_code" {
		return fmt.Errorf("unexpected header %v", header)
	}
	type row struct{ code, name, kind, unitType, parent string }
	var province string
	var districts, communes []row
	seen := map[string]bool{}
	for {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("read row: %w", err)
		}
		province = rec[0]
		if !seen[rec[1]] {
			seen[rec[1]] = true
			districts = append(districts, row{rec[1], rec[2], "district", rec[3], rec[0]})
		}
		communes = append(communes, row{rec[4], rec[5], "commune", rec[6], rec[1]})
	}
	o, err := os.Create(out)
	if err != nil {
		return fmt.Errorf("create output: %w", err)
	}
	w := csv.NewWriter(o)
	w.Comma = '\t'
	rows := append([]row{{province, provName, "province", "Tỉnh", ""}}, districts...)
	rows = append(rows, communes...)
	if err := w.Write([]string{"code", "name", "kind", "unit_type", "parent_code"}); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	for _, x := range rows {
		if err := w.Write([]string{x.code, x.name, x.kind, x.unitType, x.parent}); err != nil {
			return fmt.Errorf("write: %w", err)
		}
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return fmt.Errorf("flush: %w", err)
	}
	return o.Close()
}
