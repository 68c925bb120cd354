"""The registry's bulk load and the list query it is measured with, on a real SQLite and a real
PostgreSQL 15 (skipped when not installed). Budget: ~8 s."""
import pytest
import sqlalchemy as sa

from loadtests.bench import postgres, registry_scale


def test_seed_loads_models_versions_and_tags_that_match_the_expected_total(tmp_path):
    url = f"sqlite:///{tmp_path / 'registry.sqlite3'}"
    seeded = registry_scale.seed(url, 3000)
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            counts = [connection.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar()
                      for table in ("models", "model_versions", "model_tags")]
            matching = connection.execute(sa.text(
                "SELECT count(*) FROM models WHERE owner = 'team-03' AND id IN "
                "(SELECT model_id FROM model_versions WHERE status = 'stable')")).scalar()
    finally:
        engine.dispose()
    assert counts == [3000, 3000, 3000]
    assert seeded == 0
    assert matching == registry_scale.expected_total(3000) == 100
    # The database-only timing runs the list's statements and checks their answer.
    timing = registry_scale.database_only(url, 3000, calls=5)
    assert timing["calls"] == 5 and 0 < timing["p50_ms"] <= timing["p99_ms"]
    indexed = registry_scale.with_candidate_indexes(url, 3000)
    assert indexed["indexes"] == list(registry_scale.CANDIDATE_INDEXES) and indexed["p50_ms"] > 0


def test_the_query_asks_for_page_50_or_the_last_full_page_of_a_smaller_registry():
    assert registry_scale.expected_total(100_000) == 3334  # i = 3 (mod 30)
    assert registry_scale.query(100_000) == {"owner": "team-03", "status": "stable", "per_page": 50, "page": 50}
    assert registry_scale.query(3000)["page"] == 2


def test_a_seeded_postgres_is_settled_and_answers_the_list_statement():
    if not postgres.installed():
        pytest.skip("PostgreSQL 15 is not installed")
    server = postgres.TempPostgres()
    url = server.start()
    try:
        assert registry_scale.seed(url, 3000) == 0
        engine = sa.create_engine(url)
        try:
            with engine.connect() as connection:
                pages = connection.execute(sa.text(
                    "SELECT relname, relpages, relallvisible FROM pg_class WHERE relname IN "
                    "('models', 'model_statuses', 'model_tags', 'rollouts')")).all()
        finally:
            engine.dispose()
        assert len(pages) == 4 and all(total == visible > 0 for _name, total, visible in pages)
        timing = registry_scale.database_only(url, 3000, calls=5)  # checks total and page size
        assert 0 < timing["p50_ms"] <= timing["p99_ms"]
    finally:
        server.stop()
