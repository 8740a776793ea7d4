# The bundled example: validate trades against their contract, enrich them with the
# instrument's sector, and route rows: valid ones to the silver dataset, rejected ones
# (with the rules they broke) to a dead-letter file, large trades to a review file.
@feature(name="Trade lifecycle", herd="finance")
Feature: Trade lifecycle processing
  Trades are validated against the contract and enriched.

  Scenario: Validate and enrich trades
    @module(layer="silver", domain="trading")
    @source("csv://data/trades.csv", name="trades")
    @source("parquet://data/instruments.parquet", name="instruments")
    @step(name="enriched", sql="""
      SELECT t.*, i.sector, i.exchange
      FROM trades t
      LEFT JOIN instruments i ON t.symbol = i.symbol
    """)
    @sink("parquet://out/trades_silver/", dataset="trades_silver")
    @sink("json://out/rejected.ndjson", when="invalid")
    @sink("csv://out/large_trades.csv", when="quantity * price > 5000000")
    @requires(cpu="1", memory="512Mi")
    Given the contract: contracts/trade.yaml
    When trades arrive
    Then valid trades land in the silver dataset
    And rejected trades go to the dead-letter file with the rules they broke
