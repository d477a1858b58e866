"""HRIS domain: employees, org chart, departments, time off — with a privacy policy on sensitive fields."""
