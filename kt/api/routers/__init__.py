"""One router per resource: events, catalog (items, folders), users (mastery, path), health."""
