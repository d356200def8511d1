-- A second, small search vector per chunk: the lexemes it repeats, with their positions.
-- ts_rank (normalization 0) grows with a word's occurrences, so for a one-word query these
-- chunks outrank every other match, and the head ranks them exactly as the whole vector does
-- (a single word's rank depends only on its own positions). Search can rank them alone when
-- they fill the page, instead of reading the vector of every chunk that holds a frequent word.
CREATE FUNCTION nova_repeated_lexemes(v TSVECTOR) RETURNS TSVECTOR
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$
        SELECT ts_delete(v, ARRAY(SELECT lexeme FROM unnest(v) WHERE array_length(positions, 1) < 2))
    $$;
ALTER TABLE document_chunks
    ADD COLUMN head TSVECTOR GENERATED ALWAYS AS (nova_repeated_lexemes(to_tsvector('english', content))) STORED;
-- Written through at once (no pending list), so a search never scans unmerged entries.
CREATE INDEX document_chunks_head_search ON document_chunks USING GIN (head) WITH (fastupdate = off);
