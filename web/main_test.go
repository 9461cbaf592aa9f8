package web_test

import (
	"os"
	"testing"

	"github.com/opscenter/opscenter/store/storetest"
)

// TestMain gives this package's tests one private PostgreSQL (see storetest).
func TestMain(m *testing.M) { os.Exit(storetest.Main(m)) }
