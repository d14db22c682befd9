"""Machine learning on gold: features as dbt models, training and scoring as package
functions, MLflow for tracking and the registry (docs/ml.md)."""
