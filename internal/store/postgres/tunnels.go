package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/warrenhq/warren/internal/store"
)

const tunnelColumns = `id, name, domain, description, labels, options, access_control,
	created, updated, expiration`

func scanTunnel(row pgx.Row) (*store.Tunnel, error) {
	var t store.Tunnel
	err := row.Scan(&t.ID, &t.Name, &t.Domain, &t.Description, &t.Labels, &t.Options, &t.AccessControl,
		&t.Created, &t.Updated, &t.Expiration)
	if err != nil {
		return nil, err
	}
	t.Labels = fromList(t.Labels)
	t.Options, t.AccessControl = fromBlob(t.Options), fromBlob(t.AccessControl)
	t.Created, t.Updated, t.Expiration = fromTS(t.Created), fromTS(t.Updated), fromTSPtr(t.Expiration)
	return &t, nil
}

func scanTunnelRows(rows pgx.Rows) (*store.Tunnel, error) { return scanTunnel(rows) }

// CreateTunnel implements store.Store.
func (db *DB) CreateTunnel(ctx context.Context, t *store.Tunnel) error {
	if err := t.Validate(); err != nil {
		return err
	}
	_, err := db.pool.Exec(ctx, `INSERT INTO tunnels (`+tunnelColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		t.ID, t.Name, t.Domain, t.Description, list(t.Labels), blob(t.Options), blob(t.AccessControl),
		ts(t.Created), ts(t.Updated), tsPtr(t.Expiration))
	if err != nil {
		return wrap(fmt.Sprintf("create tunnel %q (name %q)", t.ID, t.Name), err)
	}
	return nil
}

// GetTunnel implements store.Store.
func (db *DB) GetTunnel(ctx context.Context, id string) (*store.Tunnel, error) {
	t, err := scanTunnel(db.pool.QueryRow(ctx, `SELECT `+tunnelColumns+` FROM tunnels WHERE id = $1`, id))
	if err != nil {
		return nil, wrap(fmt.Sprintf("get tunnel %q", id), err)
	}
	return t, nil
}

// FindTunnel implements store.Store: one query fetches the candidates (by
// ID, by Name, and by each Name a dot in ref could end), Go applies the
// precedence.
func (db *DB) FindTunnel(ctx context.Context, ref string) (*store.Tunnel, error) {
	op := fmt.Sprintf("find tunnel %q", ref)
	if ref == "" {
		return nil, notFound(op)
	}
	prefixes := []string{}
	for i := range len(ref) {
		if ref[i] == '.' && i > 0 && i < len(ref)-1 {
			prefixes = append(prefixes, ref[:i])
		}
	}
	rows, err := db.pool.Query(ctx, `SELECT `+tunnelColumns+` FROM tunnels
		WHERE id = $1 OR name = $1 OR name = ANY($2)`, ref, prefixes)
	if err != nil {
		return nil, wrap(op, err)
	}
	ts, err := collect(rows, scanTunnelRows)
	if err != nil {
		return nil, wrap(op, err)
	}
	var byID, byName, byNameDomain *store.Tunnel
	for _, t := range ts {
		switch {
		case t.ID == ref:
			byID = t
		case t.Name == ref:
			byName = t
		case t.Name != "" && t.Domain != "" && t.Name+"."+t.Domain == ref:
			if byNameDomain == nil || len(t.Name) > len(byNameDomain.Name) {
				byNameDomain = t
			}
		}
	}
	for _, t := range []*store.Tunnel{byID, byName, byNameDomain} {
		if t != nil {
			return t, nil
		}
	}
	return nil, notFound(op)
}

// ListTunnels implements store.Store.
func (db *DB) ListTunnels(ctx context.Context) ([]*store.Tunnel, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+tunnelColumns+` FROM tunnels ORDER BY id COLLATE "C"`)
	if err != nil {
		return nil, wrap("list tunnels", err)
	}
	ts, err := collect(rows, scanTunnelRows)
	if err != nil {
		return nil, wrap("list tunnels", err)
	}
	return ts, nil
}

// UpdateTunnel implements store.Store.
func (db *DB) UpdateTunnel(ctx context.Context, t *store.Tunnel) error {
	if err := t.Validate(); err != nil {
		return err
	}
	return execOne(ctx, db.pool, fmt.Sprintf("update tunnel %q (name %q)", t.ID, t.Name),
		`UPDATE tunnels SET name = $1, domain = $2, description = $3, labels = $4, options = $5,
			access_control = $6, updated = $7, expiration = $8
		WHERE id = $9`,
		t.Name, t.Domain, t.Description, list(t.Labels), blob(t.Options),
		blob(t.AccessControl), ts(t.Updated), tsPtr(t.Expiration), t.ID)
}

// DeleteTunnel implements store.Store; ports and endpoints go with it (ON
// DELETE CASCADE).
func (db *DB) DeleteTunnel(ctx context.Context, id string) error {
	return execOne(ctx, db.pool, fmt.Sprintf("delete tunnel %q", id), `DELETE FROM tunnels WHERE id = $1`, id)
}

// tunnelExists returns pgx.ErrNoRows if there is no tunnel id.
func tunnelExists(ctx context.Context, q querier, id string) error {
	var one int
	return q.QueryRow(ctx, `SELECT 1 FROM tunnels WHERE id = $1`, id).Scan(&one)
}

const portColumns = `tunnel_id, number, name, description, protocol, ssh_user, labels,
	is_default, options, access_control, created, updated`

func scanPort(row pgx.Row) (*store.Port, error) {
	var (
		p      store.Port
		number int32
	)
	err := row.Scan(&p.TunnelID, &number, &p.Name, &p.Description, &p.Protocol, &p.SSHUser,
		&p.Labels, &p.IsDefault, &p.Options, &p.AccessControl, &p.Created, &p.Updated)
	if err != nil {
		return nil, err
	}
	p.Number = uint16(number) // the CHECK constraint keeps it in range
	p.Labels = fromList(p.Labels)
	p.Options, p.AccessControl = fromBlob(p.Options), fromBlob(p.AccessControl)
	p.Created, p.Updated = fromTS(p.Created), fromTS(p.Updated)
	return &p, nil
}

func scanPortRows(rows pgx.Rows) (*store.Port, error) { return scanPort(rows) }

// CreatePort implements store.Store.
func (db *DB) CreatePort(ctx context.Context, p *store.Port) error {
	if err := p.Validate(); err != nil {
		return err
	}
	_, err := db.pool.Exec(ctx, `INSERT INTO ports (`+portColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
		p.TunnelID, int32(p.Number), p.Name, p.Description, p.Protocol, p.SSHUser, list(p.Labels),
		p.IsDefault, blob(p.Options), blob(p.AccessControl), ts(p.Created), ts(p.Updated))
	if err != nil {
		return wrap(fmt.Sprintf("create port %d of tunnel %q", p.Number, p.TunnelID), err)
	}
	return nil
}

// UpdatePort implements store.Store.
func (db *DB) UpdatePort(ctx context.Context, p *store.Port) error {
	if err := p.Validate(); err != nil {
		return err
	}
	return execOne(ctx, db.pool, fmt.Sprintf("update port %d of tunnel %q", p.Number, p.TunnelID),
		`UPDATE ports SET name = $1, description = $2, protocol = $3, ssh_user = $4, labels = $5,
			is_default = $6, options = $7, access_control = $8, updated = $9
		WHERE tunnel_id = $10 AND number = $11`,
		p.Name, p.Description, p.Protocol, p.SSHUser, list(p.Labels),
		p.IsDefault, blob(p.Options), blob(p.AccessControl), ts(p.Updated),
		p.TunnelID, int32(p.Number))
}

// GetPort implements store.Store.
func (db *DB) GetPort(ctx context.Context, tunnelID string, number uint16) (*store.Port, error) {
	p, err := scanPort(db.pool.QueryRow(ctx,
		`SELECT `+portColumns+` FROM ports WHERE tunnel_id = $1 AND number = $2`, tunnelID, int32(number)))
	if err != nil {
		return nil, wrap(fmt.Sprintf("get port %d of tunnel %q", number, tunnelID), err)
	}
	return p, nil
}

// ListPorts implements store.Store.
func (db *DB) ListPorts(ctx context.Context, tunnelID string) ([]*store.Port, error) {
	op := fmt.Sprintf("list ports of tunnel %q", tunnelID)
	var ps []*store.Port
	err := db.tx(ctx, op, snapshot, func(tx pgx.Tx) error {
		if err := tunnelExists(ctx, tx, tunnelID); err != nil {
			return wrap(op, err)
		}
		rows, err := tx.Query(ctx, `SELECT `+portColumns+` FROM ports WHERE tunnel_id = $1 ORDER BY number`, tunnelID)
		if err != nil {
			return wrap(op, err)
		}
		if ps, err = collect(rows, scanPortRows); err != nil {
			return wrap(op, err)
		}
		return nil
	})
	return ps, err
}

// DeletePort implements store.Store.
func (db *DB) DeletePort(ctx context.Context, tunnelID string, number uint16) error {
	return execOne(ctx, db.pool, fmt.Sprintf("delete port %d of tunnel %q", number, tunnelID),
		`DELETE FROM ports WHERE tunnel_id = $1 AND number = $2`, tunnelID, int32(number))
}

const endpointColumns = `tunnel_id, id, host_id, connection_mode, host_public_keys, node, updated`

func scanEndpoint(rows pgx.Rows) (*store.Endpoint, error) {
	var e store.Endpoint
	if err := rows.Scan(&e.TunnelID, &e.ID, &e.HostID, &e.ConnectionMode, &e.HostPublicKeys, &e.Node, &e.Updated); err != nil {
		return nil, err
	}
	e.HostPublicKeys = fromList(e.HostPublicKeys)
	e.Updated = fromTS(e.Updated)
	return &e, nil
}

// PutEndpoint implements store.Store: one upsert, no read-then-write race.
func (db *DB) PutEndpoint(ctx context.Context, e *store.Endpoint) error {
	if err := e.Validate(); err != nil {
		return err
	}
	_, err := db.pool.Exec(ctx, `INSERT INTO endpoints (`+endpointColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (tunnel_id, id) DO UPDATE SET
			host_id = excluded.host_id, connection_mode = excluded.connection_mode,
			host_public_keys = excluded.host_public_keys, node = excluded.node,
			updated = excluded.updated`,
		e.TunnelID, e.ID, e.HostID, e.ConnectionMode, list(e.HostPublicKeys), e.Node, ts(e.Updated))
	if err != nil {
		return wrap(fmt.Sprintf("put endpoint %q of tunnel %q", e.ID, e.TunnelID), err)
	}
	return nil
}

// ListEndpoints implements store.Store.
func (db *DB) ListEndpoints(ctx context.Context, tunnelID string) ([]*store.Endpoint, error) {
	op := fmt.Sprintf("list endpoints of tunnel %q", tunnelID)
	var es []*store.Endpoint
	err := db.tx(ctx, op, snapshot, func(tx pgx.Tx) error {
		if err := tunnelExists(ctx, tx, tunnelID); err != nil {
			return wrap(op, err)
		}
		rows, err := tx.Query(ctx, `SELECT `+endpointColumns+` FROM endpoints WHERE tunnel_id = $1 ORDER BY id COLLATE "C"`, tunnelID)
		if err != nil {
			return wrap(op, err)
		}
		if es, err = collect(rows, scanEndpoint); err != nil {
			return wrap(op, err)
		}
		return nil
	})
	return es, err
}

// DeleteEndpoint implements store.Store.
func (db *DB) DeleteEndpoint(ctx context.Context, tunnelID, id string) error {
	return execOne(ctx, db.pool, fmt.Sprintf("delete endpoint %q of tunnel %q", id, tunnelID),
		`DELETE FROM endpoints WHERE tunnel_id = $1 AND id = $2`, tunnelID, id)
}

// DeleteEndpointsOfNode implements store.Store.
func (db *DB) DeleteEndpointsOfNode(ctx context.Context, node string) (int, error) {
	tag, err := db.pool.Exec(ctx, `DELETE FROM endpoints WHERE node = $1`, node)
	if err != nil {
		return 0, wrap(fmt.Sprintf("delete endpoints of node %q", node), err)
	}
	return int(tag.RowsAffected()), nil
}
