package app_test

import (
	"os"
	"testing"

	"github.com/nomtstore/nomtstore/internal/nodetest"
)

func TestMain(m *testing.M) { os.Exit(nodetest.Main(m)) }
