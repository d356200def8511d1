-- A socket ticket remembers the token it was issued under: a socket closes when that token
-- is revoked (logout, password change), and a ticket dies with its token.
ALTER TABLE ws_tickets ADD COLUMN token_id BLOB REFERENCES api_tokens(id) ON DELETE CASCADE;
