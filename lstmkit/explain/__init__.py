"""Explanations of any Keras forecaster: Integrated Gradients with a completeness check
(`integrated_gradients`), cross-checks with saliency, gradient x input, permutation importance and SHAP
(`crosscheck`), and attention weights set beside the attributions (`attention`).
"""
