"""Where the registries are and how fast they may be asked: plain constants, imported by the
config (which must load no HTTP client) and by the sources (which must not import the config)."""

# The registries' roots and paces (requests/s). Europe PMC publishes no hard request limit; its
# terms ask for reasonable use. ClinicalTrials.gov publishes none in its API documentation but
# answers bursts with 429. One request every two seconds is far below either, and a poll of a
# subscription costs one or two.
EUROPEPMC_BASE_URL = "https://www.ebi.ac.uk/europepmc/webservices/rest/"
EUROPEPMC_RATE = 0.5
CLINICALTRIALS_BASE_URL = "https://clinicaltrials.gov/api/v2/"
CLINICALTRIALS_RATE = 0.5
# iCite (NIH) publishes no rate limit; its clients throttle themselves (ncbijs: 2/s). A poll of
# a `cites` subscription needs one request per 200 followed papers: 1/s is ample.
ICITE_BASE_URL = "https://icite.od.nih.gov/api/"
ICITE_RATE = 1.0
