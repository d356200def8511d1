-- A second, small search vector per chunk: the lexemes it repeats. ts_rank (normalization 0)
-- grows with a word's occurrences, so for a one-word query these chunks outrank every other
-- match and search can rank them alone when they fill the page, instead of reading the vector
-- of every chunk that holds a frequent word.
CREATE FUNCTION nova_repeated_lexemes(v TSVECTOR) RETURNS TSVECTOR
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$
        SELECT COALESCE(array_to_tsvector(array_agg(lexeme)), ''::TSVECTOR)
        FROM unnest(v) WHERE array_length(positions, 1) >= 2
    $$;
ALTER TABLE document_chunks
    ADD COLUMN head TSVECTOR GENERATED ALWAYS AS (nova_repeated_lexemes(to_tsvector('english', content))) STORED;
CREATE INDEX document_chunks_head_search ON document_chunks USING GIN (head);
