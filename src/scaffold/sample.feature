# A sample pipeline: runs as it stands from the project folder with
#   runi run --scenario features/sample.feature
# and then `runi sql "SELECT count(*) FROM customers"` queries the dataset it registers.
@feature(name="Sample", herd="{{HERD}}")
Feature: Sample pipeline
  Customers are checked against their contract; valid ones land in Parquet,
  rejected ones in a dead-letter file with the rules they broke.

  Scenario: Validate customers
    @source("csv://data/customers.csv", name="customers")
    @step(name="active", sql="SELECT * FROM customers WHERE status <> 'closed'")
    @sink("parquet://out/customers/", dataset="customers")
    @sink("json://out/rejected.ndjson", when="invalid")
    Given the contract: contracts/customer.yaml
    When customers arrive
    Then valid customers land in the customers dataset (out/customers/)
