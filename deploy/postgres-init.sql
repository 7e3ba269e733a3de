-- The planes never share a database: the data plane's is created by POSTGRES_DB, this is the
-- control plane's.
CREATE DATABASE karta_control OWNER karta;
