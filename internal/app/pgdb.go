package app

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/opscenter/opscenter/internal/pgembed"
)

// EnsureDatabase creates the "opscenter" database in a fresh embedded cluster.
func EnsureDatabase(ctx context.Context, pg *pgembed.Server) error {
	conn, err := pgx.Connect(ctx, pg.DSN("postgres"))
	if err != nil {
		return fmt.Errorf("connect to embedded PostgreSQL: %w", err)
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'opscenter')`).Scan(&exists); err != nil {
		return fmt.Errorf("check database: %w", err)
	}
	if !exists {
		if _, err := conn.Exec(ctx, `CREATE DATABASE opscenter`); err != nil {
			return fmt.Errorf("create database: %w", err)
		}
	}
	return nil
}
