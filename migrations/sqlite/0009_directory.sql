-- Services, alert sources and teams tocsin has seen in events (or an operator declared), so
-- filters can offer them by name.
CREATE TABLE directory (
    organization_id  TEXT NOT NULL REFERENCES organizations (id),
    kind             TEXT NOT NULL,
    id               TEXT NOT NULL,
    name             TEXT NOT NULL,
    last_seen        BIGINT,
    declared_at      BIGINT,
    PRIMARY KEY (organization_id, kind, id)
);
