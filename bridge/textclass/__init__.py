"""Text classification shared by the login intent and the ticket categories: own words, a linear model, corpora."""
