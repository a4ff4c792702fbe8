"""_native"""
