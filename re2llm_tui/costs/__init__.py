"""What a stage costs before and after it runs: the dry run, the preflight, the cache's
savings and the proposed run plan -- each built on the plan of the stage it estimates."""
