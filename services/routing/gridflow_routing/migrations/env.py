from gridflow_common.migrate import metadata_of, run_env

run_env(metadata_of("routing"))
