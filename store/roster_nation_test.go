package store_test

import (
	"context"
	"strings"
	"testing"

	"github.com/opscenter/opscenter/configs"
	"github.com/opscenter/opscenter/store"
	"github.com/opscenter/opscenter/store/storetest"
)

// The national roster: root 00 (the nation) and the 63 provinces of 2021, each
// a child of the nation with its GSO code; it loads next to the provincial
// rules (a province alone is a root; under a nation, its parent is the nation).
func TestNationalRoster(t *testing.T) {
	f, err := configs.Rosters.Open("roster/00-2021-05-23.tsv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	entries, err := store.ParseRoster(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 64 || entries[0].Code != "00" || entries[0].Kind != store.KindNation || entries[0].ParentCode != "" {
		t.Fatalf("%d entries, root %+v", len(entries), entries[0])
	}
	names := map[string]string{}
	for _, e := range entries[1:] {
		if e.Kind != store.KindProvince || e.ParentCode != "00" || len(e.Code) != 2 {
			t.Fatalf("province row %+v", e)
		}
		names[e.Code] = e.Name
	}
	if names["22"] != "Tỉnh Quảng Ninh" || names["01"] != "Thành phố Hà Nội" || names["96"] != "Tỉnh Cà Mau" {
		t.Fatalf("names: 22 %q, 01 %q, 96 %q", names["22"], names["01"], names["96"])
	}

	for _, bad := range []string{
		"code\tname\tkind\tunit_type\tparent_code\n00\tViệt Nam\tnation\tQuốc gia\t\n22\tTỉnh Quảng Ninh\tprovince\tTỉnh\t01\n", // parent not the nation
		"code\tname\tkind\tunit_type\tparent_code\n00\tViệt Nam\tnation\tQuốc gia\t22\n",                                        // a nation has no parent
	} {
		if _, err := store.ParseRoster(strings.NewReader(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}

	ctx := context.Background()
	st, err := store.Open(ctx, storetest.DSN(t), 4)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.LoadRoster(ctx, "2021-05-23", entries); err != nil {
		t.Fatalf("load the national roster: %v", err)
	}
	ep, err := st.GetEndpoint(ctx, "00")
	if err != nil || ep.Kind != store.KindNation {
		t.Fatalf("00: %+v %v", ep, err)
	}
}
