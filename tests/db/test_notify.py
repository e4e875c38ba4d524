"""The LISTEN connection's DSN: a managed database's `?ssl=require` reaches asyncpg as TLS."""

from sqlalchemy import make_url

from db.notify import listen_dsn


def test_ssl_in_the_database_url_becomes_sslmode_for_the_listen_connection() -> None:
    url = make_url("postgresql+asyncpg://emobot:s3cret@db.example.org:5432/emobot?ssl=require")
    assert (
        listen_dsn(url) == "postgresql://emobot:s3cret@db.example.org:5432/emobot?sslmode=require"
    )
    plain = make_url("postgresql+asyncpg://postgres@127.0.0.1:5432/test")
    assert listen_dsn(plain) == "postgresql://postgres@127.0.0.1:5432/test"
