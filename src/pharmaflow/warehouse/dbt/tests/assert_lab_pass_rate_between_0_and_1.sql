-- Business rule: the lab pass rate is a ratio in [0, 1], and passed + failed + conditional
-- results never exceed the results counted.
select batch_id, lab_tests, lab_tests_passed, lab_tests_failed, lab_tests_conditional, lab_pass_rate
from {{ ref('fact_batch_production') }}
where lab_pass_rate < 0
   or lab_pass_rate > 1
   or lab_tests_passed + lab_tests_failed + lab_tests_conditional > lab_tests
