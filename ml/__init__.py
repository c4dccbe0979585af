"""Machine learning: XGBoost price prediction on stored bars."""
