"""The law catalogue: one TOML file per scaling law (shipped inside the wheel as bayescale.models)."""
