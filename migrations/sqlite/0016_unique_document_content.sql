-- A workspace holds one document per content digest, enforced by the database: two identical
-- uploads at once make one document and one 409. Duplicates left by earlier races keep their
-- rows, with their digest made distinct.
UPDATE documents SET sha256 = sha256 || ':' || lower(hex(id))
WHERE EXISTS (SELECT 1 FROM documents o
              WHERE o.workspace_id = documents.workspace_id AND o.sha256 = documents.sha256
                AND o.id < documents.id);
DROP INDEX documents_by_sha;
CREATE UNIQUE INDEX documents_by_sha ON documents (workspace_id, sha256);
