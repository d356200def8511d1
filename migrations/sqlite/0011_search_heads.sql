-- A second, small full-text index over each chunk's "head": the words it repeats, or all its
-- words when the chunk is short. For a one-word query these chunks outrank every other match
-- under bm25, so search can rank them alone when they fill the page instead of scoring every
-- chunk that holds a frequent word. The host writes the head when it indexes a chunk; chunks
-- indexed before this migration get their whole text, which is always a safe head.
ALTER TABLE document_chunks ADD COLUMN head TEXT NOT NULL DEFAULT '';
UPDATE document_chunks SET head = content;

CREATE VIRTUAL TABLE document_chunks_head USING fts5(
    head, content = 'document_chunks', content_rowid = 'seq', tokenize = 'porter unicode61'
);
INSERT INTO document_chunks_head (document_chunks_head) VALUES ('rebuild');
CREATE TRIGGER document_chunks_head_ai AFTER INSERT ON document_chunks BEGIN
    INSERT INTO document_chunks_head (rowid, head) VALUES (new.seq, new.head);
END;
CREATE TRIGGER document_chunks_head_ad AFTER DELETE ON document_chunks BEGIN
    INSERT INTO document_chunks_head (document_chunks_head, rowid, head) VALUES ('delete', old.seq, old.head);
END;

-- Ranking joins each candidate's chunk row only for these columns; an index holding them keeps
-- the chunk text (most of the row) out of the pages a search reads.
CREATE INDEX document_chunks_ranking ON document_chunks (seq, document_id, id, position, version);
