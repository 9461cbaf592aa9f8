package uplink_test

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/opscenter/opscenter/internal/app/apptest"
	"github.com/opscenter/opscenter/internal/config"
	"github.com/opscenter/opscenter/store/storetest"
	"github.com/opscenter/opscenter/synth/client"
)

func TestMain(m *testing.M) { os.Exit(storetest.Main(m)) }

// tree is a national node (root 00) and a province node (22) whose parent it is.
type tree struct {
	parent, child *apptest.App
	link          string // the parent's join link for 22
}

// nationConfig makes a node the national one: the national roster, root 00.
func nationConfig(c *config.Config) { c.Roster.ProvinceCode = "00" }

// startTree starts the parent, issues its join link for 22, and starts the
// child with that link as its parent: two servers, two databases.
func startTree(t *testing.T) *tree {
	t.Helper()
	p := apptest.Start(t, nationConfig)
	link := p.URL() + "/join#t=" + p.Endpoint("22").Token
	c := apptest.Start(t, func(c *config.Config) {
		c.Parent = config.Parent{URL: p.URL(), JoinLink: link,
			ReconnectMin: 100 * time.Millisecond, ReconnectMax: time.Second, SyncInterval: 200 * time.Millisecond}
	})
	return &tree{parent: p, child: c, link: link}
}

// restartParent stops the parent and starts it again on the same address and
// database (a restart of the national node's process).
func (tr *tree) restartParent(t *testing.T) {
	t.Helper()
	p := tr.parent
	addr, dsn := p.HTTPAddr(), p.DSN
	statePath, journal := p.Config.Live.StatePath, p.Config.Database.JournalPath
	p.Stop(t.Context())
	err := client.WaitFor(func() bool {
		ok := func() (ok bool) {
			defer func() {
				if r := recover(); r != nil {
					ok = false
				}
			}()
			tr.parent = apptest.StartDSN(&quietTB{TB: t}, dsn, func(c *config.Config) {
				nationConfig(c)
				c.HTTP.Addr, c.HTTP.PublicURL = addr, "http://"+addr
				c.Live.StatePath, c.Database.JournalPath = statePath, journal
			})
			return true
		}()
		return ok
	}, 20*time.Second)
	if err != nil {
		t.Fatalf("parent restart on %s: %v", addr, err)
	}
}

// quietTB turns a failed start into a panic, so restartParent can retry while
// the old listener lets go of the port.
type quietTB struct{ testing.TB }

func (q *quietTB) Fatal(args ...any)            { panic(fmt.Sprint(args...)) }
func (q *quietTB) Fatalf(f string, args ...any) { panic(fmt.Sprintf(f, args...)) }
func (q *quietTB) Helper()                      {}
